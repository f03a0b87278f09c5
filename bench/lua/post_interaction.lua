-- POST <prefix>: a purchase of one or two line items by a random existing customer.
local currencies = { "EUR", "USD", "GBP", "PLN" }
local categories = { "shoes", "books", "garden", "toys", "electronics", "grocery" }

local function item()
  local quantity = math.random(1, 3)
  local price = math.random(199, 24999)
  local sku = math.random(1, 5000)
  local json = string.format(
    '{"sku":"SKU-%05d","name":"Article %d","category":"%s","quantity":%d,"unit_price":%d}',
    sku, sku, categories[math.random(#categories)], quantity, price)
  return json, quantity * price
end

function request()
  local first, amount = item()
  local items = first
  if math.random() < 0.5 then
    local second, more = item()
    items = items .. "," .. second
    amount = amount + more
  end
  local body = string.format(
    '{"customer_id":"%s","type":"purchase","channel":"web","amount":%d,"currency":"%s",' ..
    '"items":[%s],"metadata":{"order":"bench-%d"}}',
    random_id(), amount, currencies[math.random(#currencies)], items, math.random(1, 1e9))
  return wrk.format("POST", prefix, json_headers(), body)
end
