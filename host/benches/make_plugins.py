"""Write N distinct copies of a bundle: `make_plugins.py BUNDLE_DIR OUT_DIR N`.

Each copy is named `<name>-<i>` and its component gets a custom section with
that name appended (valid at the end of a component), so every copy has its
own digest and is compiled, cached and loaded as a plugin of its own.
"""

import os
import sys


def leb128(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
manifest = open(os.path.join(src, "connector.toml")).read()
base = next(line.split('"')[1] for line in manifest.splitlines() if line.startswith("name"))
wasm = open(os.path.join(src, f"{os.path.basename(src)}.wasm"), "rb").read()
for i in range(n):
    name = f"{base}-{i:04d}"
    d = os.path.join(dst, name)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "connector.toml"), "w").write(manifest.replace(f'name = "{base}"', f'name = "{name}"', 1))
    body = leb128(len(b"bench")) + b"bench" + name.encode()
    open(os.path.join(d, f"{name}.wasm"), "wb").write(wasm + b"\x00" + leb128(len(body)) + body)
