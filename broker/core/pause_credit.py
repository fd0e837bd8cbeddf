"""The credit a pause earns (docs/contracts.md §5), so the page can show it before the customer
pauses or resumes. Pure: no I/O, no clock.

Zoho Billing credits the paid days a pause left unused: ``day rate x paused days that were
paid for``, the day rate being ``price / days in the billing period`` (Zoho's "Credit
Management: #4 Credits on Unused Period", help.zoho.com community, with three worked examples):

- period days = ``term_end - term_start + 1`` (the term's dates are both inclusive: June 1-30 is
  30 days);
- paid paused days = ``min(resume_on, term_end + 1 day) - max(pause_start, term_start)``, never
  negative. ``resume_on`` is the first day in use again, so it is not counted (paused June 10,
  resumed June 15: 5 days); days after the term were never paid for (paused June 15, resumed
  July 5 on a June 1-30 term: June 15-30, 16 days); days before the term were not paid by it.

Billing states the day rate in cents first and multiplies: yearly $3500 over 365 days, 60 days
paused, is $9.58 a day x 60 = $574.80. $3500 / 365 is $9.5890..., so the rate is cut to the cent,
not rounded half up ($9.59). The page shows that rate and that product, so its sentence adds up
("574.80 for 60 paid days at 9.58 a day"); an exact credit rounded once ($575.34) would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class PauseCredit:
    paused_days: int  # paid days the pause covers
    period_days: int  # days in the billing period (term start..term end inclusive)
    day_rate: Decimal  # price / period_days, cut to the cent as billing states it
    amount: Decimal  # day_rate x paused_days: exactly what the figures shown multiply to


def pause_credit(
    *,
    price: Decimal,
    term_start: date,
    term_end: date,
    pause_start: date,
    resume_on: date,
    day_rate_places: int = 2,
) -> PauseCredit:
    """The credit for pausing ``pause_start`` up to (not including) ``resume_on``."""
    if not price.is_finite() or price < 0:
        raise ValueError(f"price must be a finite amount of zero or more, not {price}")
    if term_end < term_start:
        raise ValueError(
            f"term_end ({term_end.isoformat()}) is before term_start ({term_start.isoformat()})"
        )
    if resume_on < pause_start:
        raise ValueError(
            f"resume_on ({resume_on.isoformat()}) is before pause_start ({pause_start.isoformat()})"
        )
    if day_rate_places < 0:
        raise ValueError(f"day_rate_places must be 0 or more, not {day_rate_places}")

    period_days = (term_end - term_start).days + 1
    paused_days = max(0, (min(resume_on, term_end + ONE_DAY) - max(pause_start, term_start)).days)
    day_rate = (price / period_days).quantize(Decimal(1).scaleb(-day_rate_places), ROUND_DOWN)
    # With a rate in cents the product is already in cents; the quantize only fixes the exponent
    # (a rate given to more places rounds half up once, at the end).
    amount = (day_rate * paused_days).quantize(CENT, rounding=ROUND_HALF_UP)
    return PauseCredit(paused_days, period_days, day_rate, amount)
