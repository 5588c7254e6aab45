"""Function URLs: each function's own HTTP front door (payload format 2.0 in, Lambda's response
mapping out, CORS answered by the gateway). `event`, `response` and `cors` are pure; `front` is
the aiohttp edge that routes by Host header or path and dispatches through the shared core."""
