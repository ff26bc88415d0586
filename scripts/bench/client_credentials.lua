-- wrk script: POST /oauth/token with grant_type=client_credentials and HTTP Basic
-- client authentication.
-- usage: wrk ... -s client_credentials.lua URL -- BASIC_CREDENTIALS_BASE64

function init(args)
  local basic = args[1] or error("usage: -- BASE64(client_id:secret)")
  wrk.method = "POST"
  wrk.path = "/oauth/token"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = "Basic " .. basic
end
