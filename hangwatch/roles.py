"""Who may act: the roles people and programs hold, and how a person is named in a
certificate. Shared by the controller (authorisation) and any CA that issues for it."""

PEOPLE_ROLES = ("viewer", "operator", "approver", "admin")
ROLES = ("agent", "controller", *PEOPLE_ROLES)
# A person's URI SAN; it can never be mistaken for an agent's DNS SAN.
USER_URI_PREFIX = "hangwatch://user/"
