-- wrk script: GETs of random keys. `-- PREFIX COUNT` asks PREFIX..i for i in [0, COUNT);
-- `-- PREFIX @FILE` asks PREFIX..k for k a line of FILE. Each thread formats 65536 requests
-- of random keys once, in init, and sends them in turn: formatting a request per call costs
-- wrk more than the servers it measures. Headers given with -H are kept.
local requests, n, i = {}, 65536, 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
  local prefix, what = args[1], args[2]
  local keys = nil
  if what:sub(1, 1) == "@" then
    keys = {}
    for line in io.lines(what:sub(2)) do keys[#keys + 1] = line end
  end
  local count = keys and #keys or tonumber(what)
  for j = 1, n do
    local key = keys and keys[math.random(1, count)] or tostring(math.random(0, count - 1))
    requests[j] = wrk.format(nil, prefix .. key)
  end
end
function request()
  i = i % n + 1
  return requests[i]
end
