-- wrk script: GET /v1/check, each request presenting the next token from a file.
-- usage: wrk ... -s check_distinct.lua URL -- TOKEN_FILE
-- Threads start at different offsets so they do not walk the list in lockstep.

local tokens = {}
local position = 0
local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local path = args[1] or error("usage: -- TOKEN_FILE")
  for line in io.lines(path) do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  if #tokens == 0 then
    error("no tokens in " .. path)
  end
  position = (offset or 0) * 7919 % #tokens
end

function request()
  position = position % #tokens + 1
  return wrk.format("GET", "/v1/check", { ["Authorization"] = tokens[position] })
end
