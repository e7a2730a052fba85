"""Verifies an Open Badges 3.0 credential of a running Lyceum the way a strict
outside verifier does, with libraries Lyceum does not use:

- the VC-JWT's signature with PyJWT (ES256 only), the key found by
  dereferencing the header's `kid` URL, the claims `iss`, `jti`, `nbf` and
  `sub` required and equal to the credential's members;
- the payload against 1EdTech's AchievementCredential JSON schema, and the
  issuer's profile against its Profile schema (tests/fixtures/openbadges/),
  with python-jsonschema, formats checked;
- the revocation status list: signed the same way, the credential's bit read.

Usage: openbadges.py CREDENTIAL_JWT_URL SCHEMA_DIR
Exits 0 when everything holds, 1 with the reasons otherwise.
"""

import base64
import gzip
import json
import sys
import urllib.parse
import urllib.request

import jsonschema
import jwt

# The JOSE headers Open Badges 3.0 allows (its VC-JWT section: no others).
ALLOWED_HEADERS = {"alg", "kid", "jwk", "typ"}


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def fetch(url, accept):
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode("utf-8")


def key_for(token):
    """The public key the header's `kid` dereferences to."""
    header = jwt.get_unverified_header(token)
    check(set(header) <= ALLOWED_HEADERS, f"JOSE headers beyond those allowed: {sorted(header)}")
    check(header.get("typ", "JWT") == "JWT", f"typ must be JWT: {header}")
    check(header.get("alg") == "ES256", f"alg must be ES256 (1EdTech's validator accepts RS256, ES256): {header}")
    kid = header.get("kid")
    check(isinstance(kid, str), f"no kid in the header: {header}")
    parts = urllib.parse.urlsplit(kid)
    check(parts.scheme in ("http", "https") and parts.netloc, f"kid is not an absolute URL: {kid}")
    document = json.loads(fetch(urllib.parse.urldefrag(kid).url, "application/json"))
    check(all("d" not in k for k in document.get("keys", [])), "the key set publishes a private key")
    matching = [k for k in document.get("keys", []) if k.get("kid") == kid]
    check(len(matching) == 1, f"the key set at {kid} has no single key with that kid")
    return jwt.PyJWK(matching[0]).key


def verify(token):
    """The signed payload, its claims required as Open Badges 3.0 lists them."""
    return jwt.decode(
        token,
        key_for(token),
        algorithms=["ES256"],
        options={"require": ["iss", "jti", "nbf", "sub"], "verify_exp": True, "verify_nbf": True},
    )


def validator(schema_dir, name):
    with open(f"{schema_dir}/{name}", encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = cls.FORMAT_CHECKER
    # Without rfc3339-validator installed, date-time would silently pass.
    check("date-time" in checker.checkers, "jsonschema cannot check date-time formats (install rfc3339-validator)")
    return cls(schema, format_checker=checker)


def schema_errors(v, instance):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(instance)]


def epoch(rfc3339):
    from datetime import datetime

    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def main(url, schema_dir):
    token = fetch(url, "application/vc+jwt").strip()
    vc = verify(token)
    check(vc["iss"] == vc["issuer"]["id"], f"iss {vc['iss']} is not issuer.id {vc['issuer']['id']}")
    check(vc["jti"] == vc["id"], f"jti {vc['jti']} is not id {vc['id']}")
    check(vc["sub"] == vc["credentialSubject"].get("id"), "sub is not credentialSubject.id")
    check(vc["nbf"] == epoch(vc["validFrom"]), f"nbf {vc['nbf']} is not validFrom {vc['validFrom']}")

    errors = schema_errors(validator(schema_dir, "achievementcredential.json"), vc)
    check(not errors, "AchievementCredential schema:\n  " + "\n  ".join(errors))
    profile = json.loads(fetch(vc["issuer"]["id"], "application/json"))
    errors = schema_errors(validator(schema_dir, "profile.json"), profile)
    check(not errors, "Profile schema (issuer):\n  " + "\n  ".join(errors))
    check(profile["id"] == vc["issuer"]["id"], "the issuer's profile has another id")

    status = vc["credentialStatus"]
    check(status["type"] == "BitstringStatusListEntry", f"status type: {status['type']}")
    listed = verify(fetch(status["statusListCredential"], "application/vc+jwt").strip())
    check(listed["id"] == status["statusListCredential"], "the status list has another id")
    encoded = listed["credentialSubject"]["encodedList"]
    check(encoded.startswith("u"), "encodedList is not multibase base64url")
    raw = encoded[1:]
    bits = gzip.decompress(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    check(len(bits) * 8 >= 131072, f"the status list has {len(bits) * 8} entries, under 131,072")
    index = int(status["statusListIndex"])
    check(0 <= index < len(bits) * 8, f"statusListIndex {index} is outside the list")
    check(bits[index // 8] & (0x80 >> (index % 8)) == 0, f"the credential is revoked (status list bit {index})")
    print(json.dumps({"verified": vc["id"], "sub": vc["sub"], "kid": jwt.get_unverified_header(token)["kid"]}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except (Failed, jwt.PyJWTError, jsonschema.SchemaError, OSError, KeyError, ValueError) as e:
        print(f"openbadges verification failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
