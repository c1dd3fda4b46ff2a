-- muster's traffic counters for nginx (lua-nginx-module, log_by_lua), per service and server.
--
-- The log phase of every request that has a $muster_service adds to counters in a plain
-- Lua table of its worker: no shared memory, no lock and no string building on the way
-- (a request costs a few table increments and five variable reads). A timer flushes each
-- worker's counts into the lua_shared_dict `muster_traffic` once a second with `incr`,
-- which every worker shares and which outlives reloads; the admin endpoint reads it
-- (GET /muster/traffic). Figures are therefore up to one second behind, and exact:
-- a worker that exits (reload, stop) flushes what it counted first.
--
-- Series: one per (service, server), the server as $upstream_addr writes it ("-" for a
-- request that reached no server: unknown service, no valid peer). The serving server is
-- the last address of $upstream_addr; each earlier one failed a try (error or timeout)
-- and is counted as such. Fields (the shared dict key is "SERVICE\tSERVER\tFIELD"):
--
--   1 requests  2..6 responses 1xx..5xx  7 upstream errors  8 upstream timeouts
--   9 retried requests  10 bytes sent  11 upstream response time sum (s)
--   12.. upstream response time buckets (not cumulative; the last is +Inf)
--
-- Only fields that are not zero get a key. The dict never evicts: a key that does not
-- fit (`safe_add` refuses) is counted in "dropped" instead, so a full dict costs new
-- series, never the counts of existing ones.

local base = require "resty.core.base"
local ffi = require "ffi"
require "resty.core.var"   -- declares ngx_http_lua_ffi_var_get
require "resty.core.misc"  -- declares ngx_http_lua_ffi_get_resp_status

local M = {}

local C = ffi.C
local ffi_str = ffi.string
local get_request = base.get_request
local find = string.find
local floor = math.floor
local tonumber = tonumber

-- Variables are read with resty.core's own FFI call, not through ngx.var: its metamethod
-- returns ffi.string as a tail call, which LuaJIT cannot compile here ("NYI: return to
-- lower frame"), so every read ran interpreted (see muster_balancer.lua's service_name).
local lowcase = ffi.new("char[?]", 32)
local value_ptr = ffi.new("char *[1]")
local value_len = ffi.new("size_t[1]")
local errmsg = base.get_errmsg_ptr()

local function get(r, name)
    if C.ngx_http_lua_ffi_var_get(r, name, #name, lowcase, 0, value_ptr, value_len, errmsg) ~= 0 then
        return nil
    end
    local value = ffi_str(value_ptr[0], value_len[0])
    return value
end

local BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
local NB = #BUCKETS + 1
local NF = 11 + NB
local FLUSH_EVERY = 1  -- seconds

local acc = {}  -- per worker: service -> server -> {NF counts}

local function series(service, server)
    local s = acc[service]
    if s == nil then
        s = {}
        acc[service] = s
    end
    local c = s[server]
    if c == nil then
        c = {}
        for i = 1, NF do
            c[i] = 0
        end
        s[server] = c
    end
    return c
end

local function observe(c, rt)
    if rt == nil then
        return
    end
    c[11] = c[11] + rt
    for i = 1, NB - 1 do
        if rt <= BUCKETS[i] then
            c[11 + i] = c[11 + i] + 1
            return
        end
    end
    c[11 + NB] = c[11 + NB] + 1
end

-- A try that failed: 504 is nginx's answer to a timeout, anything else an error.
local function failed_try(c, code)
    if code == "504" then
        c[8] = c[8] + 1
    else
        c[7] = c[7] + 1
    end
end

local function split(list)
    local out = {}
    for item in list:gmatch("[^,:%s][^,%s]*") do
        out[#out + 1] = item
    end
    return out
end

-- Retries: "a:1, b:2" (and " : " between groups after an internal redirect). IPv6
-- peers are "[::1]:80", so a pattern on ", " and " : " separators would not do; addresses
-- never start with ":" and contain no "," or space, which is what `split` relies on.
local function multi(r, service, addr, status)
    local addrs = split(addr)
    local codes = split(get(r, "upstream_status") or "")
    for i = 1, #addrs - 1 do
        failed_try(series(service, addrs[i]), codes[i])
    end
    local c = series(service, addrs[#addrs])
    c[9] = c[9] + 1
    if (status == 502 or status == 504) and (codes[#addrs] == "502" or codes[#addrs] == "504") then
        failed_try(c, codes[#addrs])
    end
    local times = split(get(r, "upstream_response_time") or "")
    return c, tonumber(times[#times])
end

function M.log()
    local r = get_request()
    local service = get(r, "muster_service")
    if service == nil or service == "" then
        return
    end
    local addr = get(r, "upstream_addr")
    local status = C.ngx_http_lua_ffi_get_resp_status(r)
    local c, rt
    if addr == nil or addr == "" then
        c = series(service, "-")
    elseif find(addr, ",", 1, true) == nil and find(addr, " : ", 1, true) == nil then
        c = series(service, addr)
        rt = tonumber(get(r, "upstream_response_time"))
        -- The one try failed: no header came back from the server (a 502 or 504 of its own
        -- has one). Read only on this path, so a good request costs no extra variable.
        if (status == 502 or status == 504) and (get(r, "upstream_header_time") or "-") == "-" then
            failed_try(c, status == 504 and "504" or "502")
        end
    else
        c, rt = multi(r, service, addr, status)
    end
    c[1] = c[1] + 1
    local class = floor(status / 100)
    if class >= 1 and class <= 5 then
        c[1 + class] = c[1 + class] + 1
    end
    c[10] = c[10] + (tonumber(get(r, "bytes_sent")) or 0)
    observe(c, rt)
end

local function flush(dict, counts)
    for service, servers in pairs(counts) do
        for server, c in pairs(servers) do
            local base = service .. "\t" .. server .. "\t"
            for i = 1, NF do
                local v = c[i]
                if v ~= 0 then
                    local key = base .. i
                    local ok, err = dict:incr(key, v)
                    if not ok and err == "not found" then
                        local added, aerr = dict:safe_add(key, 0)
                        if added or aerr == "exists" then
                            ok = dict:incr(key, v)
                        end
                    end
                    if not ok and i == 1 then
                        dict:incr("dropped", v, 0)
                    end
                end
            end
        end
    end
end

local function tick(premature)
    local counts = acc
    acc = {}
    local dict = ngx.shared.muster_traffic
    if dict ~= nil then
        flush(dict, counts)
    end
    return premature
end

-- init_worker: start the flush timer (which also runs once more as the worker exits).
function M.start()
    local dict = ngx.shared.muster_traffic
    if dict == nil then
        ngx.log(ngx.ERR, "muster_traffic: no lua_shared_dict muster_traffic; counting off")
        return
    end
    dict:safe_add("dropped", 0)
    local ok, err = ngx.timer.every(FLUSH_EVERY, tick)
    if not ok then
        ngx.log(ngx.ERR, "muster_traffic: cannot start the flush timer: ", err)
    end
end

-- GET /muster/traffic: "buckets B1 B2 ...\n", "dropped N\n", then "KEY VALUE\n" lines.
-- POST /muster/traffic/forget: body "SERVICE\tSERVER\n" lines; their series are deleted.
function M.admin(method, uri)
    local dict = ngx.shared.muster_traffic
    if dict == nil then
        ngx.status = 404
        return ngx.say("traffic counting is off (no lua_shared_dict muster_traffic)")
    end
    if uri == "/muster/traffic" and method == "GET" then
        local out = {"buckets " .. table.concat(BUCKETS, " ") .. "\n", "dropped " .. (dict:get("dropped") or 0) .. "\n"}
        for _, key in ipairs(dict:get_keys(0)) do
            if key ~= "dropped" then
                local v = dict:get(key)
                if v ~= nil then
                    out[#out + 1] = key .. " " .. v .. "\n"
                end
            end
        end
        return ngx.print(out)
    elseif uri == "/muster/traffic/forget" and method == "POST" then
        ngx.req.read_body()
        local n = 0
        for service, server in (ngx.req.get_body_data() or ""):gmatch("([^\t\n]+)\t([^\t\n]+)\n") do
            for i = 1, NF do
                dict:delete(service .. "\t" .. server .. "\t" .. i)
            end
            n = n + 1
        end
        return ngx.say("ok ", n)
    end
    ngx.status = 405
    return ngx.say("method not allowed")
end

return M
