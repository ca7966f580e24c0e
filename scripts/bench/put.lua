-- wrk script of the memory rows: each thread PUTs `-- COUNT SIZE` unique keys of SIZE-byte
-- values into keyspace `mem`, then stops.
local counter, limit, prefix = 0, 0, ""
function setup(thread) thread:set("id", tostring(math.random(1, 1e9))) end
function init(args)
  prefix = id
  limit = tonumber(args[1])
  wrk.method = "PUT"
  wrk.body = string.rep("v", tonumber(args[2]))
end
function request()
  counter = counter + 1
  return wrk.format(nil, "/v1/keyspaces/mem/keys/" .. prefix .. "-" .. counter)
end
function response()
  if counter >= limit then wrk.thread:stop() end
end
