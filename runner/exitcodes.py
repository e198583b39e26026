"""The exit codes of `campaign`, which every result of the API carries as ``.exit_code``.

    0   all good
    1   invalid campaign or input: nothing sent
    2   usage error
    3   the run finished, but some recipients failed, are unknown or expired
    70  internal error: the journal is intact, a rerun resumes
    75  stopped early (signal, window closed, cap reached, state store unreachable, run in
        progress elsewhere): rerun to resume
    78  the account refused the run (key, SID, sender, route)
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2
EXIT_INCOMPLETE: Final = 3
EXIT_INTERNAL: Final = 70
EXIT_STOPPED: Final = 75
EXIT_REFUSED: Final = 78

# The --help epilog: what CI authors ask first.
EPILOG = """\
exit codes:
  0   all good
  1   invalid campaign or input: nothing sent
  2   usage error
  3   the run finished, but some recipients failed, are unknown or expired
  70  internal error: the journal is intact, a rerun resumes
  75  stopped early (signal, send window closed, state store unreachable or lost, run in
      progress elsewhere, ...): rerun the same command to resume
  78  the account refused the run (key, SID, sender, route)

environment:
  KALEYRA_API_KEY   the API key (or the variable named by account.api_key_env)
  KALEYRA_SID       the account SID, when the campaign has no account.sid
  KALEYRA_BASE_URL  replaces https://<api domain> (a proxy, or the sandbox)
  CAMPAIGN_STATE    postgresql://... URL for the run's state (as --state; the flag wins)
"""
