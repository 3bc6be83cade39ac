"""The notifier's contracts: what its send log and settings speak of (the kinds of the notification matrix,
channels, delivery statuses), shared by the notifier and the gateway that filters and edits them
(docs/notifier.md). Which event causes which send is the notifier's own rule (services/notifier/domain.py)."""
CHANNELS = ("email", "sms", "inbox")
# of one notification in the send log; 'capped': over a letter or SMS cap, kept in the log and never sent
STATUSES = ("pending", "sending", "sent", "failed", "capped")

# The notification matrix L1-L10 (letters), S1-S5 (SMS); L5 is the partner's private message.
KINDS = ("L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9", "L10", "S1", "S2", "S3", "S4", "S5")
ALERT = "ALERT"  # letters to the admin address that belong to no order (settings changed, new sign-in)
# letters to a customer account: sign-up confirmation and password reset, and the security notices (password
# changed or reset, withdrawal requested with the link confirming a new destination). Always sent (not in
# settings): without them nobody can sign up or back in, and an owner must hear of changes they did not make.
ACCOUNT_KINDS = ("SIGNUP", "RESET", "PASSWORD", "WITHDRAWAL")
# which letter an `account_notice` event becomes
ACCOUNT_NOTICE_KINDS = {"password_changed": "PASSWORD", "password_reset": "PASSWORD",
                        "withdrawal_requested": "WITHDRAWAL"}
# one SMS to the admin phone in place of the admin SMS held back during a burst (docs/security.md)
SMS_SUMMARY = "SMS_SUMMARY"

