-- wrk script: GETs of keys never asked before, so each one misses and is loaded from the data
-- source. `-- PREFIX` asks PREFIX<run>-<thread>-<n> for n = 1, 2, …; <run> is random, so a
-- second run against the same server misses too. Headers given with -H are kept.
local counter, prefix = 0, ""
local threads = 0
local run = 0
function setup(thread)
  if run == 0 then
    math.randomseed(os.time())
    run = math.random(1, 1e9)
  end
  threads = threads + 1
  thread:set("tag", run .. "-" .. threads .. "-")
end
function init(args)
  prefix = args[1] .. tag
end
function request()
  counter = counter + 1
  return wrk.format(nil, prefix .. counter)
end
