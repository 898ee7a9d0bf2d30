"""The sensitive-field vector, computed independently of the Rust code: RFC 8017 RSAES-OAEP-ENCRYPT with SHA-1 and
MGF1-SHA-1, step by step with hashlib and pow, under pubkey.pem, with the seed 00 01 … 13. Prints base64.
Check it decrypts: base64 -d | openssl pkeyutl -decrypt -inkey pubkey.key -pkeyopt rsa_padding_mode:oaep
-pkeyopt rsa_oaep_md:sha1 (prints the message)."""
import base64, hashlib, subprocess, sys
from pathlib import Path

here = Path(__file__).parent
text = subprocess.run(["openssl", "rsa", "-pubin", "-in", str(here / "pubkey.pem"), "-noout", "-text"],
                      capture_output=True, text=True, check=True).stdout
hexdigits = "".join(text.split("Modulus:")[1].split("Exponent:")[0].split()).replace(":", "")
n = int(hexdigits, 16)
e = int(text.split("Exponent:")[1].split()[0])
k = (n.bit_length() + 7) // 8
msg = "张三 13800138000".encode()
seed = bytes(range(20))
def mgf1(s, length):
    out = b""
    c = 0
    while len(out) < length:
        out += hashlib.sha1(s + c.to_bytes(4, "big")).digest()
        c += 1
    return out[:length]
db = hashlib.sha1(b"").digest() + b"\0" * (k - len(msg) - 2 * 20 - 2) + b"\x01" + msg
masked_db = bytes(a ^ b for a, b in zip(db, mgf1(seed, len(db))))
masked_seed = bytes(a ^ b for a, b in zip(seed, mgf1(masked_db, 20)))
em = b"\0" + masked_seed + masked_db
c = pow(int.from_bytes(em, "big"), e, n).to_bytes(k, "big")
sys.stdout.write(base64.b64encode(c).decode() + "\n")
