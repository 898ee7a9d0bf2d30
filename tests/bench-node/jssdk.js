// The Node/Express baseline for tests/examples/bench-jssdk.rs: the same JS-SDK config handler as wxkit's
// GET /api/v1/jssdk/config — URL checks (http(s), fragment dropped, host allowed), optional API list, a random
// 16-character nonce, sha1 over jsapi_ticket/noncestr/timestamp/url — with the ticket in memory (wxkit's comes from
// its token manager's in-process cache). Usage: [WORKERS=N] node jssdk.js PORT APPID TICKET ALLOWED_HOST
"use strict";
const crypto = require("crypto");
const express = require("express");

const [port, appId, ticket, allowedHost] = process.argv.slice(2);
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const DEFAULT_APIS = ["updateAppMessageShareData", "updateTimelineShareData"];

function nonce() {
  const bytes = crypto.randomBytes(16);
  let s = "";
  for (let i = 0; i < 16; i++) s += ALNUM[bytes[i] % ALNUM.length];
  return s;
}

function fail(res, code, message) {
  res.status(400).json({ error: { code, message } });
}

const app = express();
app.disable("x-powered-by");
app.disable("etag");
app.get("/api/v1/jssdk/config", (req, res) => {
  const raw = typeof req.query.url === "string" ? req.query.url : "";
  if (!raw) return fail(res, "missing_url", "give the page's URL: ?url=<location.href>");
  const page = raw.split("#")[0];
  let parsed;
  try { parsed = new URL(page); } catch (e) { return fail(res, "invalid_url", "page URL is not a URL"); }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return fail(res, "invalid_url", "page URL must be http(s)");
  if (parsed.hostname.toLowerCase() !== allowedHost) return fail(res, "url_not_allowed", parsed.hostname + " is not a JS-SDK domain");
  const apis = typeof req.query.apis === "string"
    ? req.query.apis.split(",").map((a) => a.trim()).filter((a) => a && a.length <= 64 && /^[A-Za-z0-9]+$/.test(a))
    : DEFAULT_APIS;
  const nonceStr = nonce();
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = crypto.createHash("sha1")
    .update(`jsapi_ticket=${ticket}&noncestr=${nonceStr}&timestamp=${timestamp}&url=${page}`)
    .digest("hex");
  res.set("Cache-Control", "no-store");
  res.json({ appId, timestamp, nonceStr, signature, jsApiList: apis });
});
const cluster = require("cluster");
const workers = Number(process.env.WORKERS || 1);
if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  app.listen(Number(port), "127.0.0.1");
}
