-- muster's admin endpoint inside nginx: the only writer of the `muster` shared dict.
--
--   PUT    /muster/services/NAME   body: "ip port weight\n" lines; replaces the list atomically
--   DELETE /muster/services/NAME
--   PUT    /muster/routes          body: the route table (muster_routes.lua); DELETE drops it
--   PUT    /muster/generation      body: muster's token for the state it pushed
--   GET    /muster/state           "generation TOKEN\n", "master PID ALIVE\n", "changes N\n",
--                                   then "service NAME VERSION PEERS MD5\n" lines
--   GET    /muster/summary         the first three lines alone: N counts every put and
--                                   delete, so muster can tell nobody else pushed without
--                                   reading every service
--   GET    /muster/traffic         the traffic counters (muster_traffic.lua), read-only
--   POST   /muster/traffic/forget  drop the counters of servers that left
--
-- nginx keeps the dict across reloads but not across restarts; muster reads the
-- generation back to tell whether nginx still holds what it pushed, and each list's MD5
-- to undo a push it did not make.

local M = {}

local ffi = require("ffi")
local process = require("ngx.process")
pcall(ffi.cdef, "int getppid(void);")

-- A master killed with SIGKILL leaves its workers serving (and answering here), but
-- nothing can reload or restart nginx: the worker's parent is then no longer the master.
local function master_alive()
    local master = process.get_master_pid()
    return master, master ~= nil and ffi.C.getppid() == master
end

local dict = ngx.shared.muster
local NAME = "^[%w%._%-]+$"
local LINE = "^(%S+) (%d+) (%d+)$"

-- The balancer phase cannot resolve names: only IPv4 or IPv6 literals, a port and a
-- weight in nginx's ranges (muster resolves and validates before it pushes).
local function valid_peer(line)
    local host, port, weight = line:match(LINE)
    if not host then
        return false
    end
    port, weight = tonumber(port), tonumber(weight)
    if port < 1 or port > 65535 or weight < 1 or weight > 1000 then
        return false
    end
    if host:find(":", 1, true) then
        return host:match("^[%x:%.]+$") ~= nil
    end
    local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return a ~= nil and tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
end

local function fail(status, msg)
    ngx.status = status
    ngx.say(msg)
    return ngx.exit(status)
end

local function body()
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if data == nil and ngx.req.get_body_file() ~= nil then
        return nil, "body too large"
    end
    return data or ""
end

-- The service's own version, then the global one the balancer checks per request.
local function changed(name)
    dict:incr("ver:" .. name, 1, 0)
    dict:incr("gen", 1, 0)
end

local function put_service(name)
    local data, err = body()
    if not data then
        return fail(413, err)
    end
    local count = 0
    for line in data:gmatch("([^\n]*)\n") do
        if not valid_peer(line) then
            return fail(400, "bad peer line: " .. line)
        end
        count = count + 1
    end
    if #data > 0 and data:sub(-1) ~= "\n" then
        return fail(400, "body must end with a newline")
    end
    -- safe_set: a full dict must refuse this service, not evict another one.
    local ok, serr = dict:safe_set("svc:" .. name, data)
    if not ok then
        return fail(507, "shared dict: " .. tostring(serr))
    end
    changed(name)
    ngx.say("ok ", count)
end

-- The route table (muster_routes.lua): tab-separated E/H/M/P lines, each a known kind.
local function put_routes()
    local data, err = body()
    if not data then
        return fail(413, err)
    end
    for line in data:gmatch("([^\n]*)\n") do
        -- Values travel percent-encoded: only tabs and printable ASCII.
        if not line:match("^[EHMP]\t") or line:find("[^\t\32-\126]") then
            return fail(400, "bad route line")
        end
    end
    if #data > 0 and data:sub(-1) ~= "\n" then
        return fail(400, "body must end with a newline")
    end
    local ok, serr = dict:safe_set("routes", data)
    if not ok then
        return fail(507, "shared dict: " .. tostring(serr))
    end
    dict:incr("routes_ver", 1, 0)
    dict:incr("gen", 1, 0)
    ngx.say("ok")
end

local function summary()
    ngx.say("generation ", dict:get("generation") or "")
    local master, alive = master_alive()
    ngx.say("master ", master or 0, " ", alive and 1 or 0)
    ngx.say("changes ", dict:get("gen") or 0)
end

local function state()
    summary()
    ngx.say("routes ", ngx.md5(dict:get("routes") or ""))
    for _, key in ipairs(dict:get_keys(0)) do
        local name = key:match("^svc:(.+)$")
        if name then
            local raw = dict:get(key) or ""
            local _, peers = raw:gsub("\n", "")
            ngx.say("service ", name, " ", dict:get("ver:" .. name) or 0, " ", peers, " ", ngx.md5(raw))
        end
    end
end

-- Membership changes are unauthenticated: only a unix socket or loopback client may
-- make them, even if this location is wired into a server that listens elsewhere.
local function local_client()
    local addr = ngx.var.remote_addr or ""
    return addr == "unix:" or addr == "::1" or addr:find("^127%.") ~= nil
end

function M.handle()
    if not local_client() then
        return fail(403, "admin endpoint: unix socket or loopback clients only")
    end
    local method = ngx.req.get_method()
    local uri = ngx.var.uri
    local name = uri:match("^/muster/services/(.+)$")
    if name then
        if not name:match(NAME) then
            return fail(400, "bad service name")
        end
        if method == "PUT" then
            return put_service(name)
        elseif method == "DELETE" then
            dict:delete("svc:" .. name)
            changed(name)
            return ngx.say("ok")
        end
        return fail(405, "method not allowed")
    elseif uri == "/muster/routes" and method == "PUT" then
        return put_routes()
    elseif uri == "/muster/routes" and method == "DELETE" then
        dict:delete("routes")
        dict:delete("routes_ver")
        dict:incr("gen", 1, 0)
        return ngx.say("ok")
    elseif uri == "/muster/generation" and method == "PUT" then
        local data = body() or ""
        dict:set("generation", data)
        return ngx.say("ok")
    elseif uri == "/muster/state" and method == "GET" then
        return state()
    elseif uri:find("^/muster/traffic") then
        return require("muster_traffic").admin(method, uri)
    elseif uri == "/muster/summary" and method == "GET" then
        return summary()
    end
    return fail(404, "not found")
end

return M
