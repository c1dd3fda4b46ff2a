-- muster's zero-reload balancer for nginx (lua-nginx-module, balancer_by_lua).
--
-- muster pushes each service's peers into the lua_shared_dict `muster` over the admin
-- endpoint; every worker decodes a service's list once per version and balances with
-- nginx's own smooth weighted round robin. A failing peer is counted in the shared dict
-- and skipped for `fail_timeout` after `max_fails` failures, like nginx's max_fails.
-- Peers are "ip port weight\n" lines: muster validates and resolves names before the
-- push, because the balancer phase cannot resolve DNS.

local balancer = require "ngx.balancer"

local M = {}

local dict = ngx.shared.muster
local cache = {}          -- per worker: service -> {ver=, peers=}
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
        local id = host .. " " .. port
        peers[#peers + 1] = {host = host, port = tonumber(port), weight = tonumber(weight),
                             id = id, fail_key = "fail:" .. id, cw = 0}
    end
    return peers
end

local function load(name)
    local ver = dict:get("ver:" .. name)
    local c = cache[name]
    if c and c.ver == ver then
        return c
    end
    local raw = ver and dict:get("svc:" .. name)
    c = {ver = ver, peers = raw and parse(raw) or {}}
    cache[name] = c
    return c
end

function M.has_peers(name)
    return #load(name).peers > 0
end

-- Access phase of the catch-all location. A service muster never pushed (or deleted)
-- goes to whatever the server block answers for an unknown path (its `location /`, as in
-- the reload data plane): the internal URI has no second slash, so it cannot match the
-- catch-all again. A service whose servers are all gone or invalid answers 503.
function M.route(name)
    local c = load(name)
    if c.ver == nil or dict:get("svc:" .. name) == nil then
        return ngx.exec("/.muster-unknown-service")
    end
    if #c.peers == 0 then
        ngx.status = 503
        ngx.header["Content-Type"] = "text/plain"
        ngx.say("no server of ", name, " is available")
        return ngx.exit(503)
    end
end

local function is_down(peer)
    local fails = dict:get(peer.fail_key)
    return fails ~= nil and fails >= MAX_FAILS
end

-- Smooth weighted round robin (nginx's ngx_http_upstream_get_peer) over the peers that
-- are neither excluded by `skip` nor down; when all are down, down peers are tried too.
local function pick(peers, skip)
    for pass = 1, 2 do
        local best, total = nil, 0
        for i = 1, #peers do
            local p = peers[i]
            if not skip[p.id] and (pass == 2 or not is_down(p)) then
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

function M.balance(name)
    local ctx = ngx.ctx
    local peers = load(name).peers
    if #peers == 0 then
        return ngx.exit(503)
    end
    local tried = ctx.muster_tried
    if tried == nil then
        tried = {}
        ctx.muster_tried = tried
        local tries = math.min(#peers, MAX_TRIES)
        if tries > 1 then
            balancer.set_more_tries(tries - 1)
        end
    else
        local state = balancer.get_last_failure()
        if state == "failed" and ctx.muster_last then
            local key = ctx.muster_last
            local n = dict:incr(key, 1, 0, FAIL_TIMEOUT)
            if n == nil then
                dict:set(key, 1, FAIL_TIMEOUT)
            end
        end
    end
    local peer = pick(peers, tried) or pick(peers, {})
    tried[peer.id] = true
    ctx.muster_last = peer.fail_key
    local ok, err = balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "muster: set_current_peer ", peer.id, ": ", err)
        return ngx.exit(500)
    end
end

return M
