from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from runner.model import Account, Campaign, MessageSpec, RecipientsSpec, SendingSpec
from runner.plan import plan_batches, plan_texts
from runner.recipients import Recipient


def campaign(body: str | None = "Hello", *, type_: str = "MKT", batch_size: int = 100,
             template_id: str | None = None) -> Campaign:
    return Campaign(
        path=Path("c.yaml"), name="t", account=Account(region="IN"),
        message=MessageSpec(sender="KLRHXA", type=type_, body=body, template_id=template_id),
        recipients=RecipientsSpec(source=Path("r.csv")),
        sending=SendingSpec(batch_size=batch_size),
    )


def rows(n: int, *, names: list[str] | None = None, status: str = "ok") -> list[Recipient]:
    out = []
    for i in range(n):
        phone = f"+9198{i:08d}"
        fields = {"phone": phone, "name": names[i % len(names)] if names else "x"}
        out.append(Recipient(row=i + 2, raw_phone=phone, phone=phone, status=status,  # type: ignore[arg-type]
                             fields=fields))
    return out


def test_batches_hold_at_most_batch_size_and_cover_every_sendable_row_once() -> None:
    planned = list(plan_batches(rows(250), campaign()))
    assert [len(b.rows) for b in planned] == [100, 100, 50]
    assert sorted(r for b in planned for r in b.rows) == list(range(2, 252))
    assert len({b.id for b in planned}) == 3


def test_batch_size_from_the_campaign_is_honoured() -> None:
    planned = list(plan_batches(rows(10), campaign(batch_size=4)))
    assert [len(b.rows) for b in planned] == [4, 4, 2]


def test_otp_goes_one_number_a_request_whatever_batch_size_says() -> None:
    planned = list(plan_batches(rows(3), campaign(type_="OTP", batch_size=100)))
    assert [len(b.rows) for b in planned] == [1, 1, 1]


def test_rows_that_are_not_ok_or_already_settled_are_left_out() -> None:
    recipients = rows(5)
    recipients[1] = replace(recipients[1], status="invalid", phone=None)
    recipients[2] = replace(recipients[2], status="duplicate")
    planned = list(plan_batches(recipients, campaign(), skip={recipients[3].row}))
    assert [r for b in planned for r in b.rows] == [recipients[0].row, recipients[4].row]


def test_personalised_bodies_group_only_identical_texts() -> None:
    people = rows(7, names=["Asha", "Ravi"])
    name_of = {r.row: r.fields["name"] for r in people}
    planned = list(plan_batches(people, campaign("Hi {name}!")))
    assert sorted(b.body for b in planned if b.body) == ["Hi Asha!", "Hi Ravi!"]
    for batch in planned:
        assert {name_of[row] for row in batch.rows} == {batch.body[3:-1]}  # type: ignore[index]


def test_open_groups_are_bounded_so_memory_is_too() -> None:
    names = [f"n{i}" for i in range(50)]
    planned = list(plan_batches(rows(50, names=names), campaign("Hi {name}"), max_open_groups=10))
    assert len(planned) == 50
    assert sorted(r for b in planned for r in b.rows) == list(range(2, 52))


def test_template_only_campaigns_send_no_body() -> None:
    planned = list(plan_batches(rows(2), campaign(None, template_id="1107161234567890123")))
    assert [b.body for b in planned] == [None]


def test_a_rare_text_leaves_once_its_first_row_is_max_wait_rows_behind() -> None:
    common = [(row, f"+9198{row:08d}", "common") for row in range(3, 40)]
    ticks = [(row, None, None) for row in range(40, 60)]  # rows not sent still move the stream
    planned = list(plan_texts([(2, "+919800000000", "rare"), *common, *ticks], 10,
                              max_wait=50))
    rare = next(b for b in planned if b.body == "rare")
    assert rare.rows == (2,)
    assert planned.index(rare) == 3  # after the common batches of rows 3-32, before the rest
    assert [len(b.rows) for b in planned] == [10, 10, 10, 1, 7]
