"""An independent client against the simulator: the PyPI package `wechatpayv3`, unmodified, places, queries, closes
and refunds orders, downloads platform certificates and verifies and decrypts notifies — in certificate mode or in
public-key mode (MODE). Its one gateway field is pointed at the simulator (it has no base-URL setting); nothing else
is patched. Run by tests/app/pay_v3.rs (`wechatpayv3_runs_unmodified_against_the_simulator`); exits non-zero on the
first thing that does not work as against WeChat Pay.

Environment: SIM (base URL), MODE (certificate | public_key), MCHID, APPID, KEY (merchant key PEM path), SERIAL
(merchant certificate serial), APIV3_KEY, PUBLIC_KEY (PEM path) and PUBLIC_KEY_ID (public-key mode), PLATFORM_CERT
(PEM path of the current platform certificate, certificate mode: the SDK's cert_dir starts with it).
"""
import hashlib
import hmac
import json
import os
import urllib.parse
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wechatpayv3 import WeChatPay, WeChatPayType

env = os.environ
SIM, MODE, MCHID = env["SIM"], env["MODE"], env["MCHID"]
received = []


def check(cond, what):
    if not cond:
        print(f"FAIL {MODE}: {what}", flush=True)
        sys.exit(1)
    print(f"ok   {MODE}: {what}", flush=True)


def sim_post(path):
    req = urllib.request.Request(SIM + path, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


class Notify(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # As a web framework hands them over: canonical header names.
        headers = {"-".join(p.capitalize() for p in k.split("-")): v for k, v in self.headers.items()}
        result = wxpay.callback(headers, body)
        received.append(result)
        ok = bool(result)
        self.send_response(200 if ok else 500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"code": "SUCCESS" if ok else "FAIL", "message": "" if ok else "verify"}).encode())

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Notify)
threading.Thread(target=server.serve_forever, daemon=True).start()
notify_url = f"http://127.0.0.1:{server.server_address[1]}/notify"

private_key = open(env["KEY"]).read()
kwargs = {}
if MODE == "public_key":
    kwargs = {"public_key": open(env["PUBLIC_KEY"]).read(), "public_key_id": env["PUBLIC_KEY_ID"]}
else:
    cert_dir = tempfile.mkdtemp()
    cert = open(env["PLATFORM_CERT"]).read()
    with open(os.path.join(cert_dir, "current.pem"), "w") as f:
        f.write(cert)
    kwargs = {"cert_dir": cert_dir}
wxpay = WeChatPay(
    wechatpay_type=WeChatPayType.NATIVE,
    mchid=MCHID,
    private_key=private_key,
    cert_serial_no=env["SERIAL"],
    appid=env["APPID"],
    apiv3_key=env["APIV3_KEY"],
    notify_url=notify_url,
    **kwargs,
)
wxpay._core._gate_way = SIM  # the one gateway field; the package has no base-URL setting

if MODE == "certificate":
    # WeChat Pay rotates its certificate: the next answer comes under a serial the SDK does not know, and it
    # downloads /v3/certificates (sealed with the APIv3 key) to verify it.
    status, _ = sim_post(f"/_sim/pay/v3/merchants/{MCHID}/rotate")
    check(status == 200, "the simulator rotated the platform certificate")


def wait_for(pred, what):
    deadline = time.time() + 10
    while time.time() < deadline:
        if any(r and pred(r) for r in received):
            return
        time.sleep(0.05)
    check(False, what)


suffix = str(int(time.time() * 1000))
no = f"py{MODE[:4]}{suffix}"
code, message = wxpay.pay(description="互操作测试", out_trade_no=no, amount={"total": 10}, pay_type=WeChatPayType.NATIVE)
check(code == 200 and json.loads(message).get("code_url"), f"NATIVE prepay answered and verified ({code})")
if MODE == "certificate":
    check(len(wxpay._core._certificates) >= 1, "platform certificates downloaded after the rotation")
code, message = wxpay.query(out_trade_no=no)
check(code == 200 and json.loads(message)["trade_state"] == "NOTPAY", "query: NOTPAY, verified")
status, _ = sim_post(f"/_sim/pay/orders/{no}/pay")
check(status == 200, "paid at the simulated cashier")
wait_for(lambda r: r["resource"].get("out_trade_no") == no and r["resource"].get("trade_state") == "SUCCESS",
         "TRANSACTION.SUCCESS notify verified and decrypted")
code, message = wxpay.query(out_trade_no=no)
check(code == 200 and json.loads(message)["trade_state"] == "SUCCESS", "query: SUCCESS, verified")
rno = f"r{no}"
code, message = wxpay.refund(out_refund_no=rno, amount={"refund": 10, "total": 10, "currency": "CNY"}, out_trade_no=no)
check(code == 200 and json.loads(message).get("out_refund_no") == rno, f"refund accepted and verified ({code})")
code, message = wxpay.query_refund(out_refund_no=rno)
check(code == 200 and json.loads(message).get("out_refund_no") == rno, "refund query verified")
wait_for(lambda r: r["resource"].get("out_refund_no") == rno, "REFUND notify verified and decrypted")
no2 = f"py{MODE[:4]}c{suffix}"
code, _ = wxpay.pay(description="关单", out_trade_no=no2, amount={"total": 5}, pay_type=WeChatPayType.NATIVE)
check(code == 200, "a second order placed")
code, _ = wxpay.close(out_trade_no=no2)
check(code == 204, f"close answered 204 ({code})")

# WeChat Pay 商家券 (merchant coupons): the same package's marketing calls, and the H5 page's and the plugin's v2
# signatures computed here with Python's hmac — independently of wxkit.
V2_KEY = env["V2_KEY"]


def v2_sign(params):
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if params[k]) + "&key=" + V2_KEY
    return hmac.new(V2_KEY.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def bj(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(ts + 8 * 3600))


def h5(stock_id, out_request_no, open_id, coupon_code, sign=None):
    params = {"stock_id": stock_id, "out_request_no": out_request_no, "send_coupon_merchant": MCHID,
              "open_id": open_id, "coupon_code": coupon_code}
    params["sign"] = sign or v2_sign(params)
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{SIM}/busifavor/getcouponinfo?{query}", timeout=10) as r:
        page = r.read().decode()
    if "busifavor-receive" not in page:
        return page
    req = urllib.request.Request(f"{SIM}/busifavor/getcouponinfo", data=query.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


logo = os.path.join(tempfile.mkdtemp(), "logo.png")
with open(logo, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
code, message = wxpay.marketing_image_upload(logo)
logo_url = json.loads(message).get("media_url") if code == 200 else None
check(bool(logo_url), f"marketing image upload: meta signed, sha256 checked, answer verified ({code} {message})")
now = int(time.time())
code, message = wxpay.marketing_busifavor_stock_create(
    stock_name="互操作咖啡券", belong_merchant=MCHID, goods_name="咖啡", stock_type="NORMAL",
    coupon_use_rule={"coupon_available_time": {"available_begin_time": bj(now - 60),
                                               "available_end_time": bj(now + 30 * 86400)},
                     "fixed_normal_coupon": {"discount_amount": 100, "transaction_minimum": 101},
                     "use_method": "OFF_LINE"},
    stock_send_rule={"max_coupons": 1, "max_coupons_per_user": 1},
    out_request_no=f"pystock{MODE[:4]}{suffix}", coupon_code_mode="MERCHANT_API",
    display_pattern_info={"merchant_logo_url": logo_url, "merchant_name": "互操作"})
stock_id = json.loads(message).get("stock_id") if code == 200 else None
check(bool(stock_id), f"商家券 stock created and verified ({code} {message})")
code, message = wxpay.marketing_busifavor_stock_query(stock_id)
check(code == 200 and json.loads(message)["stock_send_rule"]["max_coupons"] == 1, "stock query verified")
code, message = wxpay.marketing_busifavor_callback_update(mchid=MCHID, notify_url=notify_url)
check(code == 200, f"callback URL set ({code})")
code, message = wxpay.marketing_busifavor_callback_query(mchid=MCHID)
check(code == 200 and json.loads(message)["notify_url"] == notify_url, "callback URL read back, verified")

c1, c2 = f"PYA{MODE[:4].upper()}{suffix}", f"PYB{MODE[:4].upper()}{suffix}"
page = h5(stock_id, f"pyh5a{suffix}", "o-py", c1, sign="0" * 64)
check("签名错误" in page, "H5 page: a wrong v2 signature is refused")
page = h5(stock_id, f"pyh5a{suffix}", "o-py", c1)
check('data-outcome="received"' in page, "H5 page: v2 signature (Python hmac) accepted, coupon received")
page = h5(stock_id, f"pyh5a{suffix}", "o-py", c2)
check("out_request_no" in page and 'data-outcome="refused"' in page, "H5: the attempt's number reused with another code is refused")
page = h5(stock_id, f"pyh5b{suffix}", "o-py2", c2)
check("STOCK_NOT_ENOUGH" in page, "H5: a stock out of budget sends nothing")
code, message = wxpay.marketing_busifavor_stock_budget(stock_id, target_max_coupons=3, current_max_coupons=2,
                                                        modify_budget_request_no=f"pybud0{suffix}")
check(code == 400, f"budget: a wrong current budget is refused (compare-and-set) ({code})")
code, message = wxpay.marketing_busifavor_stock_budget(stock_id, target_max_coupons=3, current_max_coupons=1,
                                                        modify_budget_request_no=f"pybud1{suffix}")
check(code == 200 and json.loads(message)["max_coupons"] == 3, "budget raised, verified")
page = h5(stock_id, f"pyh5c{suffix}", "o-py", c2)
check("USER_LIMIT" in page, "H5: a user at the per-user limit gets nothing")

# The plugin send (a mini-program user) calls back: COUPON.SEND, verified and decrypted by the package.
plugin = {"stock_id0": stock_id, "out_request_no0": f"pyplug{suffix}", "coupon_code0": c2, "send_coupon_merchant": MCHID}
body = json.dumps({"send_coupon_params": [{"stock_id": stock_id, "out_request_no": f"pyplug{suffix}", "coupon_code": c2}],
                   "send_coupon_merchant": MCHID, "sign": v2_sign(plugin), "openid": "o-py3"}).encode()
req = urllib.request.Request(f"{SIM}/_sim/pay/busifavor/plugin-send", data=body, method="POST",
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    sent = json.loads(r.read())
check(sent["send_coupon_result"][0]["code"] == "SUCCESS", "plugin send: indexed v2 signature accepted")
wait_for(lambda r: r.get("event_type") == "COUPON.SEND" and r["resource"].get("coupon_code") == c2,
         "COUPON.SEND notify verified and decrypted")

code, message = wxpay.marketing_busifavor_coupon_detail(c1, "o-py")
check(code == 200 and json.loads(message)["coupon_state"] == "SENDED", "user coupon query verified")
code, message = wxpay.marketing_busifavor_user_coupon("o-py", stock_id=stock_id)
check(code == 200 and json.loads(message)["total_count"] == 1, "user coupons listed, verified")
use = dict(coupon_code=c1, use_time=bj(int(time.time())), use_request_no=f"pyuse{suffix}", stock_id=stock_id, openid="o-py")
code, message = wxpay.marketing_busifavor_coupon_use(**use)
check(code == 200 and json.loads(message)["stock_id"] == stock_id, "coupon used (核销), verified")
code, message = wxpay.marketing_busifavor_coupon_use(**use)
check(code == 200, "the same use_request_no again: the same success")
code, message = wxpay.marketing_busifavor_coupon_use(**dict(use, use_request_no=f"pyuse2{suffix}"))
check(code == 400 and json.loads(message)["code"] == "INVALID_REQUEST", "another use of a used coupon refused")
code, message = wxpay.marketing_busifavor_coupon_return(c1, stock_id, f"pyret{suffix}")
check(code == 200, "a used coupon returned (退券), verified")
code, message = wxpay.marketing_busifavor_coupon_deactivate(c1, stock_id, f"pydea{suffix}", "互操作")
check(code == 200, "coupon deactivated (使券失效), verified")
code, message = wxpay.marketing_busifavor_coupon_use(**dict(use, use_request_no=f"pyuse3{suffix}"))
check(code == 400, "a deactivated coupon cannot be used")
print(f"wechatpayv3 {MODE}: all calls and notifies verified", flush=True)
