"""The sign-in steps shared by the API (POST /api/v1/auth/token) and the sign-in pages: password, TOTP code,
and finishing; every failure is audited and counted towards the lockout of that username."""
from gateway.security.alerts import note_address
from gateway.security.caller import client_ip
from gateway.security.lockout import lockout_store
from gateway.security.staff import staff_store
from gateway.security.totp import totp_store


def password_step(username, password, via):
    """(staff, None, None) when the password is right; (None, "locked"|"invalid", locked_until) otherwise."""
    ip = client_ip()
    store, locks = staff_store(), lockout_store()
    until = locks.locked_until(username)
    if until is not None:
        store.audit(username, "sign_in", outcome="locked", ip=ip, detail={"via": via})
        return None, "locked", until
    staff = store.authenticate(username, password)
    if staff is None:
        store.audit(username, "sign_in", outcome="failed", ip=ip, detail={"via": via, "reason": "password"})
        until = locks.fail(username, ip, "password")
        if until is not None:
            store.audit(username, "lockout", outcome="locked", ip=ip, detail={"until": until})
        return None, "invalid", until
    return staff, None, None


def code_step(staff, code, via):
    """Check a TOTP code of an enrolled staff member; a wrong one counts towards the lockout."""
    ip = client_ip()
    if totp_store().verify(staff["id"], code):
        return True
    staff_store().audit(staff["username"], "sign_in", outcome="failed", role=staff["role"], ip=ip,
                        detail={"via": via, "reason": "totp"})
    until = lockout_store().fail(staff["username"], ip, "totp")
    if until is not None:
        staff_store().audit(staff["username"], "lockout", outcome="locked", ip=ip, detail={"until": until})
    return False


def finish_sign_in(staff, via, cur):
    """The staff member is fully signed in: audit it, forget past failures, alert on a new address."""
    ip = client_ip()
    new_address = note_address(cur, staff, ip, via)
    staff_store().audit(staff["username"], "sign_in", role=staff["role"], ip=ip,
                        detail={"via": via, "new_address": new_address}, cur=cur)
    lockout_store().succeeded(staff["username"])
