-- POST <prefix>/<random account id>/earn (5 points) or /redeem (1 point), half each.
-- Accounts are funded beforehand, so a redeem never runs out of points.
function request()
  local account = prefix .. "/" .. random_id()
  if math.random() < 0.5 then
    return wrk.format("POST", account .. "/earn", json_headers(), '{"points":5,"reference":"bench"}')
  end
  return wrk.format("POST", account .. "/redeem", json_headers(), '{"points":1,"reference":"bench"}')
end
