-- wrk script: POST get-many of random keys. `-- PATH COUNT BATCH` posts to PATH bodies
-- {"keys": [...]} of BATCH keys k<i>, i random in [0, COUNT). Each thread formats 512
-- requests once, in init, and sends them in turn. Headers given with -H are kept.
local requests, n, i = {}, 512, 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
  local path, count, batch = args[1], tonumber(args[2]), tonumber(args[3])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for j = 1, n do
    local keys = {}
    for k = 1, batch do keys[k] = '"k' .. math.random(0, count - 1) .. '"' end
    requests[j] = wrk.format(nil, path, nil, '{"keys":[' .. table.concat(keys, ",") .. ']}')
  end
end
function request()
  i = i % n + 1
  return requests[i]
end
