-- GET <prefix>/<random existing customer id>
function request()
  return wrk.format("GET", prefix .. "/" .. random_id())
end
