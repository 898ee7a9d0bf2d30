// The Node/Express + qr-image baseline of wxkit's GET /c/{code}/qr.png: the coupon's URL (BASE/c/CODE) as a PNG at
// ?size= px (default 300; whole pixels per module, 4-module margin, level M, as wxkit draws it), rendered per request.
// It looks nothing up (wxkit reads the coupon from its database first). Usage: node qr.js PORT BASE
"use strict";
const express = require("express");
const qr = require("qr-image");

const [port, base] = process.argv.slice(2);
const modulesByLength = new Map();
const app = express();
app.disable("x-powered-by");
app.disable("etag");
app.get("/c/:code/qr.png", (req, res) => {
  const size = req.query.size === undefined ? 300 : Number(req.query.size);
  if (!Number.isInteger(size) || size < 100 || size > 1200) {
    return res.status(400).json({ error: { code: "invalid_size", message: "size must be 100 to 1200 px" } });
  }
  const url = `${base}/c/${req.params.code}`;
  // Module count by URL length (coupon URLs all have one length): Node encodes once per request, as wxkit does.
  let modules = modulesByLength.get(url.length);
  if (modules === undefined) {
    modules = qr.matrix(url, "M").length + 8;
    modulesByLength.set(url.length, modules);
  }
  const png = qr.imageSync(url, { type: "png", ec_level: "M", size: Math.max(1, Math.floor(size / modules)), margin: 4 });
  res.set("Cache-Control", "private, max-age=86400");
  res.type("png").send(png);
});
app.listen(Number(port), "127.0.0.1");
