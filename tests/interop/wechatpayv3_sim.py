"""An independent client against the simulator: the PyPI package `wechatpayv3`, unmodified, places, queries, closes
and refunds orders, downloads platform certificates and verifies and decrypts notifies — in certificate mode or in
public-key mode (MODE). Its one gateway field is pointed at the simulator (it has no base-URL setting); nothing else
is patched. Run by tests/app/pay_v3.rs (`wechatpayv3_runs_unmodified_against_the_simulator`); exits non-zero on the
first thing that does not work as against WeChat Pay.

Environment: SIM (base URL), MODE (certificate | public_key), MCHID, APPID, KEY (merchant key PEM path), SERIAL
(merchant certificate serial), APIV3_KEY, PUBLIC_KEY (PEM path) and PUBLIC_KEY_ID (public-key mode), PLATFORM_CERT
(PEM path of the current platform certificate, certificate mode: the SDK's cert_dir starts with it).
"""
import json
import os
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
print(f"wechatpayv3 {MODE}: all calls and notifies verified", flush=True)
