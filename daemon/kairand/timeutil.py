"""Japan time, defined once. Bottom layer: imports nothing of kairand.

Japan has no daylight saving, so a fixed UTC+9 offset is exact for every date Kairan handles.
"""

from __future__ import annotations

import datetime as dt

JST = dt.timezone(dt.timedelta(hours=9), "JST")
"""Japan Standard Time (UTC+9): calendar arithmetic, report dates, display."""

__all__ = ["JST"]
