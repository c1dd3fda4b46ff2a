-- muster's zero-reload balancer for nginx (lua-nginx-module, balancer_by_lua).
--
-- muster pushes each service's peers into the lua_shared_dict `muster` over the admin
-- endpoint; every worker decodes a service's list once per version and balances with
-- nginx's own smooth weighted round robin. Peers are "ip port weight\n" lines: muster
-- validates and resolves names before the push, because the balancer phase cannot
-- resolve DNS.
--
-- The hot path reads the shared dict once per request: the admin endpoint bumps a
-- global `gen` with every change, and a worker re-checks a service's own version only
-- when `gen` moved since it last looked. Failures are counted per worker, as nginx
-- does for an upstream without `zone`: `max_fails` failures within `fail_timeout`
-- take a peer out for `fail_timeout`.
--
-- No other Lua runs per request: for a service with no peer (never pushed, or none
-- valid) the balancer exits with 500, and the location's `error_page 500` sends the
-- request to no_peer(), which answers 404 or 503.

local balancer = require "ngx.balancer"
local base = require "resty.core.base"
local ffi = require "ffi"
local routes = require "muster_routes"
require "resty.core.var"  -- declares ngx_http_lua_ffi_var_get, which service_name() calls

local get_last_failure = balancer.get_last_failure
local set_more_tries = balancer.set_more_tries
local set_current_peer = balancer.set_current_peer
local set_timeouts = balancer.set_timeouts
local route_policy = routes.policy
local crc32 = ngx.crc32_long
local get_request = base.get_request
local ffi_str = ffi.string
local C = ffi.C

local M = {}

local dict = ngx.shared.muster
local now = ngx.now
local cache = {}          -- per worker: service -> {ver=, gen=, peers=}
local fails = {}          -- per worker: peer id ("ip:port") -> {n=, expires=}
local MAX_FAILS = 1
local FAIL_TIMEOUT = 10   -- seconds
local MAX_TRIES = 3

function M.configure(opts)
    MAX_FAILS = opts.max_fails or MAX_FAILS
    FAIL_TIMEOUT = opts.fail_timeout or FAIL_TIMEOUT
    MAX_TRIES = opts.max_tries or MAX_TRIES
end

local function parse(raw)
    local peers = {}
    for host, port, weight in raw:gmatch("([%w%.:%-]+) (%d+) (%d+)\n") do
        -- nginx parses an IPv6 host only in brackets (set_current_peer says "invalid port"
        -- otherwise); the id is the peer as $upstream_addr writes it.
        if host:find(":", 1, true) then
            host = "[" .. host .. "]"
        end
        peers[#peers + 1] = {host = host, port = tonumber(port), weight = tonumber(weight),
                             id = host .. ":" .. port, cw = 0}
    end
    return peers
end

-- The worker's view of `name`: nil when muster never pushed it (or deleted it).
local function lookup(name)
    local gen = dict:get("gen")
    local c = cache[name]
    if c and c.gen == gen then
        return c.peers
    end
    local ver = dict:get("ver:" .. name)
    if ver == nil then
        -- Never pushed: not cached, so requests for made-up names cannot grow the cache.
        cache[name] = nil
        return nil
    end
    if not (c and c.ver == ver) then
        local raw = dict:get("svc:" .. name)
        -- Keep the previous entry's round-robin position for peers that stay.
        local peers = raw and parse(raw)
        if peers and c and c.peers then
            local old = {}
            for _, p in ipairs(c.peers) do
                old[p.id] = p.cw
            end
            for _, p in ipairs(peers) do
                p.cw = old[p.id] or 0
            end
        end
        c = {ver = ver, peers = peers}
        cache[name] = c
    end
    c.gen = gen
    return c.peers
end

-- $muster_service, read with the same FFI call as resty.core's ngx.var. Its ngx.var
-- returns ffi.string as a tail call, which LuaJIT cannot compile when called from the
-- balancer ("NYI: return to lower frame"): the interpreted call cost 3.5 us a request,
-- as much as the rest of the balancer.
local VAR_NAME = "muster_service"
local var_lowcase = ffi.new("char[?]", #VAR_NAME)
local var_value = ffi.new("char *[1]")
local var_len = ffi.new("size_t[1]")
local var_err = base.get_errmsg_ptr()

local function service_name()
    local rc = C.ngx_http_lua_ffi_var_get(get_request(), VAR_NAME, #VAR_NAME, var_lowcase, 0,
                                          var_value, var_len, var_err)
    if rc ~= 0 then
        return nil
    end
    local name = ffi_str(var_value[0], var_len[0])
    return name
end

function M.has_peers(name)
    local peers = lookup(name)
    return peers ~= nil and #peers > 0
end

-- "unknown" for a service muster never pushed (or deleted), "empty" when it has no
-- valid server, "" when the balancer has peers to pick from.
function M.state(name)
    local peers = lookup(name)
    if peers == nil then
        return "unknown"
    end
    return #peers == 0 and "empty" or ""
end

local UNKNOWN_SERVICE = "/.muster-unknown-service"

local function unavailable(name)
    ngx.status = 503
    ngx.header["Content-Type"] = "text/plain"
    ngx.say("no server of ", name, " is available")
    return ngx.exit(503)
end

-- Access-phase form of `state` for hand-written locations: an unknown service goes to
-- the server block's answer for an unknown path (the internal URI has no second slash,
-- so it cannot match the catch-all again); one with no valid server answers 503.
function M.route(name)
    local state = M.state(name)
    if state == "unknown" then
        return ngx.exec(UNKNOWN_SERVICE)
    elseif state == "empty" then
        return unavailable(name)
    end
end

local function is_down(peer, t)
    local f = fails[peer.id]
    if f == nil then
        return false
    end
    if f.expires <= t then
        fails[peer.id] = nil
        return false
    end
    return f.n >= MAX_FAILS
end

local function record_failure(id)
    local t = now()
    -- Drop what expired, so peers that failed and then left the registry do not pile up.
    for key, entry in pairs(fails) do
        if entry.expires <= t then
            fails[key] = nil
        end
    end
    local f = fails[id]
    if f == nil or f.expires <= t then
        fails[id] = {n = 1, expires = t + FAIL_TIMEOUT}
    else
        f.n = f.n + 1
        if f.n == MAX_FAILS then
            f.expires = t + FAIL_TIMEOUT
        end
    end
end

-- Smooth weighted round robin (nginx's ngx_http_upstream_get_peer) over the peers that
-- are neither excluded by `skip` nor down; when all are down, down peers are tried too.
local function pick(peers, skip)
    local t = next(fails) and now() or 0
    for pass = 1, 2 do
        local best, total = nil, 0
        for i = 1, #peers do
            local p = peers[i]
            if not (skip and skip[p.id]) and (pass == 2 or t == 0 or not is_down(p, t)) then
                p.cw = p.cw + p.weight
                total = total + p.weight
                if best == nil or p.cw > best.cw then
                    best = p
                end
            end
        end
        if best then
            best.cw = best.cw - total
            return best
        end
    end
    return nil
end

-- On a retry, the peers this request tried so far, from $upstream_addr ("a:1, b:2 : "
-- mid-retry: nginx separates groups with " : "). Reading it only then keeps the first
-- try free of per-request state (no ngx.ctx, no table).
local function tried_so_far()
    local tried, last = {}, nil
    for addr in (ngx.var.upstream_addr or ""):gmatch("[^,%s]+") do
        if addr ~= ":" then
            tried[addr] = true
            last = addr
        end
    end
    return tried, last
end

-- The stock template's @muster_no_peer: the balancer found no peer for $muster_service
-- and exited with 500 (the only status a balancer exit can give). An unknown service
-- gets the server block's answer for an unknown path, one with no valid server 503.
function M.no_peer()
    local name = ngx.var.muster_service
    if name == nil or name == "" then
        return ngx.exit(500)  -- the balancer logged why
    end
    if M.state(name) == "unknown" then
        return ngx.exec(UNKNOWN_SERVICE)
    end
    -- No valid server; or, in the moment since the balancer looked, servers were pushed
    -- (503 is still the truth of that request); or the balancer failed and logged why.
    return unavailable(name)
end

-- Consistent hashing (ketama, as nginx's `hash ... consistent`): 160 points per unit of
-- weight on a ring, built once per peer list; a key takes the first point at or after its
-- hash, so a peer joining or leaving moves only the keys of the arcs it takes or frees.
local function ring_of(peers)
    local ring = peers.ring
    if ring then
        return ring
    end
    ring = {}
    for _, p in ipairs(peers) do
        for i = 1, 160 * math.min(p.weight, 16) do
            ring[#ring + 1] = {h = crc32(p.id .. "-" .. i), peer = p}
        end
    end
    table.sort(ring, function(a, b) return a.h < b.h end)
    peers.ring = ring
    return ring
end

local function pick_hash(peers, key, skip)
    local ring = ring_of(peers)
    local h = crc32(key or "")
    local lo, hi = 1, #ring
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if ring[mid].h < h then
            lo = mid + 1
        else
            hi = mid
        end
    end
    if ring[lo].h < h then
        lo = 1
    end
    for i = 0, #ring - 1 do
        local p = ring[(lo - 1 + i) % #ring + 1].peer
        if not (skip and skip[p.id]) then
            return p
        end
    end
    return nil
end

-- Least connections, counted per worker: the balancer counts a request in and done()
-- (log_by_lua of the route location) counts it out.
local active = {}

local function pick_least(peers, skip)
    local best, best_load = nil, nil
    local t = now()
    for i = 1, #peers do
        local p = peers[i]
        if not (skip and skip[p.id]) and not is_down(p, t) then
            local load = (active[p.id] or 0) / p.weight
            if best == nil or load < best_load then
                best, best_load = p, load
            end
        end
    end
    best = best or pick(peers, skip)
    if best then
        local ctx = ngx.ctx
        if ctx.muster_lc then
            active[ctx.muster_lc] = (active[ctx.muster_lc] or 1) - 1
        end
        ctx.muster_lc = best.id
        active[best.id] = (active[best.id] or 0) + 1
    end
    return best
end

function M.done()
    local id = ngx.ctx.muster_lc
    if id then
        active[id] = (active[id] or 1) - 1
        if active[id] <= 0 then
            active[id] = nil
        end
    end
end

local function pick_for(policy, peers, skip)
    local bal = policy and policy.bal
    if bal == "hash" then
        return pick_hash(peers, ngx.var[policy.hash_var], skip)
    elseif bal == "lc" then
        return pick_least(peers, skip)
    end
    return pick(peers, skip)
end

-- A split sends a share of the traffic to other services; the choice is made once per
-- request (retries stay with it), and a target with no peer gives its share back.
local function split_target(name, policy)
    local ctx = ngx.ctx
    local target = ctx.muster_target
    if target == nil then
        target = name
        local r = math.random(10000)
        for _, s in ipairs(policy.split) do
            if r <= s.upto then
                target = s.name
                break
            end
        end
        ctx.muster_target = target
    end
    return target
end

local DEFAULT_ON = {error = true, timeout = true}
local IDEMPOTENT = {GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true}

-- The route location lets nginx retry on any condition; the route's retry_on decides.
-- nginx reports a failure by status only: 502 is a connection error or a 502 answer,
-- 504 a timeout or a 504 answer, so either condition lets those through.
local RETRY_CONDS = {[502] = {"error", "502"}, [503] = {"503"}, [504] = {"timeout", "504"}}

local function may_retry(policy)
    local _, code = get_last_failure()
    local on = policy.on or DEFAULT_ON
    local conds = RETRY_CONDS[code] or {"error"}
    if not (on[conds[1]] or (conds[2] and on[conds[2]])) then
        return false, code
    end
    if not on.non_idempotent and not IDEMPOTENT[ngx.req.get_method()] then
        return false, code
    end
    return true
end

-- `name` defaults to $muster_service; configurations muster wrote before pass it.
function M.balance(name)
    name = name or service_name()
    if name == nil or name == "" then
        ngx.log(ngx.ERR, "muster: proxy_pass to muster_balancer from a location that sets no $muster_service")
        return ngx.exit(500)
    end
    local policy = route_policy(name)
    local target = name
    if policy and policy.split then
        target = split_target(name, policy)
    end
    local peers = lookup(target)
    if target ~= name and (peers == nil or #peers == 0) then
        target, peers = name, lookup(name)
    end
    if peers == nil or #peers == 0 then
        -- The location's error_page (the stock template's @muster_no_peer) says 404 or 503.
        return ngx.exit(500)
    end
    local balance_policy = target == name and policy or route_policy(target)
    local peer
    if get_last_failure() == nil then
        local max = policy and policy.tries or MAX_TRIES
        local tries = #peers < max and #peers or max
        if tries > 1 then
            set_more_tries(tries - 1)
        end
        if policy and policy.timeouts then
            local ct, st, rt = policy.ct, policy.st, policy.rt
            set_timeouts(ct and ct / 1000, st and st / 1000, rt and rt / 1000)
        end
        peer = pick_for(balance_policy, peers, nil)
    else
        if policy then
            local ok, code = may_retry(policy)
            if not ok then
                return ngx.exit(code or 502)
            end
        end
        local tried, last = tried_so_far()
        if last then
            record_failure(last)
        end
        peer = pick_for(balance_policy, peers, tried) or pick(peers, nil)
    end
    local ok, err = set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "muster: set_current_peer ", peer.id, ": ", err)
        return ngx.exit(500)
    end
end

return M
