-- muster's route table for nginx's Lua data plane: which service serves a request, and
-- the route's policies, pushed by muster (PUT /muster/routes) with no reload.
--
-- The table is muster.registry.routing's, encoded by muster.dataplane.routes: host key ->
-- entries (service, prefix, strip) longest prefix first, and per-service policies. Each
-- worker decodes it once per version (`routes_ver` in the `muster` dict).
--
-- Per request: route(), in set_by_lua at the server level, picks the host key (exact,
-- then the longest wildcard, then any host) and the longest prefix. It answers "" when
-- the stock `location /NAME/` serves the request as it is (a *fast* entry, or no entry at
-- all), "-" for a request no route may take (404), else the entry's id; nginx then
-- rewrites the request to the internal /.muster-ID location, where apply() runs the
-- route's request policies (rate limit, body size, prefix strip, headers, websocket) and
-- the balancer (muster_balancer) its upstream ones (split, balance, timeouts, retries).

local ffi = require "ffi"
local lrucache = require "resty.lrucache"

pcall(ffi.cdef, "int memcmp(const void *s1, const void *s2, size_t n);")
local C = ffi.C

local M = {}

local dict = ngx.shared.muster
local limits = ngx.shared.muster_rl
local unescape = ngx.unescape_uri
local now = ngx.now
local byte = string.byte
local sub = string.sub
local find = string.find
local tonumber = tonumber

local ROUTE_PREFIX = "/.muster-"
local UNKNOWN_SERVICE = "/.muster-unknown-service"

local T = nil        -- per worker: the decoded table
local T_VER = nil    -- its routes_ver
local HOSTS = nil    -- per worker: host -> its entries, for the hosts seen lately (LRU)

local function split(text, sep)
    local out = {}
    if text == nil or text == "" then
        return out
    end
    for item in (text .. sep):gmatch("(.-)" .. sep) do
        out[#out + 1] = item
    end
    return out
end

local function pairs_of(text)
    local out = {}
    for _, item in ipairs(split(text, ",")) do
        local name, value = item:match("^([^=]+)=(.*)$")
        if name then
            out[#out + 1] = {unescape(name), unescape(value)}
        end
    end
    return out
end

local function policy(fields)
    local p = {}
    for i = 3, #fields do
        local k, v = fields[i]:match("^(%w+)=(.*)$")
        if k then
            p[k] = v
        end
    end
    local out = {
        ct = tonumber(p.ct), st = tonumber(p.st), rt = tonumber(p.rt), tries = tonumber(p.tries),
        body = tonumber(p.body), bal = p.bal, ws = p.ws == "1", rate = tonumber(p.rate),
        burst = tonumber(p.burst), rq = pairs_of(p.rq), rs = pairs_of(p.rs),
    }
    if out.ct or out.st or out.rt then
        out.timeouts = true
    end
    if p.on then
        out.on = {}
        for _, c in ipairs(split(p.on, ",")) do
            out.on[c] = true
        end
    end
    if p.hk then
        local kind, name = p.hk:match("^(%w)%:(.+)$")
        out.hash_var = kind == "h" and ("http_" .. name:gsub("-", "_")) or kind == "c" and ("cookie_" .. name)
                       or "remote_addr"
    end
    if p.split then
        out.split = {}
        local total = 0
        for _, item in ipairs(split(p.split, ",")) do
            local name, share = item:match("^(.+):(%d+)$")
            total = total + tonumber(share)
            out.split[#out.split + 1] = {name = name, upto = total}
        end
    end
    return out
end

-- A host key's entries split by the path's first segment, so a lookup scans only the
-- entries that can match: "/api/v1/" is under "api"; "/", "/ap" and "/api" (no second
-- slash) are short and scanned after any segment's list. Both lists are longest first,
-- and a short prefix that matches a path under "api" is shorter than any of "api"'s.
local EMPTY = {segs = {}, short = {}}

local function by_segment(list)
    local out = {segs = {}, short = {}}
    for _, e in ipairs(list) do
        local seg = e.prefix:match("^/([^/]*)/")
        if seg then
            local l = out.segs[seg] or {}
            l[#l + 1] = e
            out.segs[seg] = l
        else
            out.short[#out.short + 1] = e
        end
    end
    return out
end

local function decode(raw)
    local t = {entries = {}, by_num = {}, hosts = {}, masked = {}, policies = {}}
    for line in raw:gmatch("([^\n]*)\n") do
        local f = split(line, "\t")
        local kind = f[1]
        if kind == "E" then
            -- The id nginx sees names the location too: "p<N>" for /.muster-p (request
            -- policies only), "x<N>" for /.muster-x (response headers, least connections and
            -- splits need its header filter and log phase). Never "0", which `if` takes as false.
            local prefix = unescape(f[4])
            local id = (f[7] == "1" and "x" or "p") .. f[2]
            local e = {id = id, service = f[3], prefix = prefix, len = #prefix, strip = f[5] == "1",
                       fast = f[6] == "1"}
            t.entries[id] = e
            t.by_num[f[2]] = e
        elseif kind == "H" then
            local list = {}
            for _, id in ipairs(split(f[3], ",")) do
                list[#list + 1] = t.by_num[id]
            end
            t.hosts[f[2] == "*" and "" or f[2]] = by_segment(list)
        elseif kind == "M" then
            t.masked[f[2]] = true
        elseif kind == "P" then
            t.policies[f[2]] = policy(f)
        end
    end
    return t
end

-- The decoded table, or nil when muster pushed none (every request routes as before).
local function current()
    local ver = dict:get("routes_ver")
    if ver == nil then
        T, T_VER = nil, nil
        return nil
    end
    if ver ~= T_VER then
        local raw = dict:get("routes")
        T = raw and decode(raw) or nil
        T_VER = ver
        -- Bounded: clients choose the Host header.
        HOSTS = lrucache.new(1024)
    end
    return T
end

function M.policy(name)
    local t = current()
    return t and t.policies[name]
end

local function host_entries(t, host)
    local list = t.hosts[host]
    if list then
        return list
    end
    local rest = host
    while true do
        local dot = rest:find(".", 1, true)
        if not dot then
            break
        end
        rest = sub(rest, dot + 1)
        list = t.hosts["*." .. rest]
        if list then
            return list
        end
    end
    return t.hosts[""] or EMPTY
end

-- Exposed for tests and the benchmark: the entry serving host + uri, or nil.
function M.lookup(host, uri)
    local t = current()
    if t == nil then
        return nil
    end
    local list = HOSTS:get(host)
    if list == nil then
        list = host_entries(t, host)
        HOSTS:set(host, list)
    end
    -- memcmp through the FFI: no substring per entry, and JIT-compiled.
    local n = #uri
    local slash = find(uri, "/", 2, true)
    local seg = slash and list.segs[sub(uri, 2, slash - 1)]
    if seg then
        for i = 1, #seg do
            local e = seg[i]
            local len = e.len
            if len <= n and C.memcmp(uri, e.prefix, len) == 0 then
                return e
            end
        end
    end
    local short = list.short
    for i = 1, #short do
        local e = short[i]
        local len = e.len
        if len <= n and C.memcmp(uri, e.prefix, len) == 0 then
            return e
        end
    end
    return nil
end

-- set_by_lua at the server level: "" (route as before), "-" (404) or an entry id.
function M.route()
    local t = current()
    if t == nil then
        return ""
    end
    local uri = ngx.var.uri
    local e = M.lookup(ngx.var.host or "", uri)
    if e then
        return e.fast and "" or e.id
    end
    -- No entry: the stock location would take /NAME/ to NAME, whose route may not say so.
    local first = uri:match("^/([^/]+)/")
    if first and t.masked[first] then
        return "-"
    end
    return ""
end

-- nginx's limit_req (leaky bucket in milli-requests): `rate` per second, `burst` at once.
local warned = false

local function limited(service, p)
    if limits == nil then
        -- An nginx configured by an older `muster nginx-lua-conf`: no dict, no limit.
        if not warned then
            ngx.log(ngx.ERR, "muster: rate limits need `lua_shared_dict muster_rl` (muster nginx-lua-conf)")
            warned = true
        end
        return false
    end
    local key = service .. " " .. (ngx.var.binary_remote_addr or "")
    local t = now() * 1000
    local state = limits:get(key)
    local excess = 0
    if state then
        local last_excess, last = state:match("^(%d+) ([%d.]+)$")
        excess = tonumber(last_excess) - p.rate * (t - tonumber(last)) + 1000
        if excess < 0 then
            excess = 0
        end
        if excess > (p.burst - 1) * 1000 then
            return true
        end
    end
    limits:set(key, string.format("%d %.3f", math.floor(excess), t), 60)
    return false
end

-- set_by_lua in /.muster-p and /.muster-x (no coroutine, unlike rewrite_by_lua): the
-- request's route policies; returns "" to go on to the balancer, else the status nginx
-- answers with (404: no such route, 413, 429).
function M.apply()
    local t = current()
    local id = ngx.var.muster_route
    local e = t and t.entries[id]
    if e == nil then
        return "404"
    end
    local p = t.policies[e.service]
    if p then
        if p.rate and limited(e.service, p) then
            return "429"
        end
        if p.body then
            local length = tonumber(ngx.var.http_content_length)
            if length and length > p.body then
                return "413"
            end
        end
        for i = 1, #p.rq do
            ngx.req.set_header(p.rq[i][1], p.rq[i][2])
        end
        if p.ws then
            local upgrade = ngx.var.http_upgrade
            if upgrade then
                ngx.var.muster_upgrade = upgrade
                ngx.var.muster_connection = "upgrade"
            end
        end
    end
    -- "/.muster-" .. id, then the request's own path.
    local uri = sub(ngx.var.uri, #ROUTE_PREFIX + #id + 1)
    if e.strip then
        uri = sub(uri, e.len + 1)
        if byte(uri, 1) ~= 47 then  -- "/"
            uri = "/" .. uri
        end
    end
    ngx.req.set_uri(uri)
    ngx.var.muster_service = e.service
    return ""
end

-- header_filter_by_lua in /.muster-x: the route's response headers replace the upstream's.
function M.respond()
    local t = T
    local e = t and t.entries[ngx.var.muster_route]
    local p = e and t.policies[e.service]
    if p then
        for i = 1, #p.rs do
            ngx.header[p.rs[i][1]] = p.rs[i][2]
        end
    end
end

return M
