-- GET <prefix> as given: the same request every time.
function request()
  return wrk.format("GET", prefix)
end
