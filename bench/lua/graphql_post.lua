-- POST <prefix> (the GraphQL endpoint) with the body in the file given as a 4th argument.
local body
local common_init = init
function init(args)
  common_init(args)
  local file = assert(io.open(args[4], "rb"))
  body = file:read("*a")
  file:close()
end

function request()
  return wrk.format("POST", prefix, json_headers(), body)
end
