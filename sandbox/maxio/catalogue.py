"""The catalogue loaded at every reset: seed-notes.md section 004's product and components.

The original's product-to-component map has seven products but six component ids
("Pavillio Platform - Basic" and "- Lite" share 2544427), so six components are created.
"""

from __future__ import annotations

from typing import Any

PRODUCT_FAMILY: dict[str, Any] = {"id": 2_400_001, "handle": "pavillio", "name": "Pavillio"}

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": 6_500_001,
        "handle": "monthly-usage",
        "name": "Monthly Usage",
        "price_in_cents": 0,
        "interval": 1,
        "interval_unit": "month",
        "product_family_id": PRODUCT_FAMILY["id"],
    }
]

COMPONENTS: list[dict[str, Any]] = [
    {"id": 2544422, "name": "Pavillio Subscription - Core Billing", "handle": "pavillio-core-billing"},
    {"id": 2544424, "name": "Pavillio Subscription - County Billing", "handle": "pavillio-county-billing"},
    {"id": 2554766, "name": "Managed Billing Subscription", "handle": "managed-billing"},
    {"id": 2544421, "name": "Pavillio Per Client Fee", "handle": "pavillio-per-client-fee"},
    {"id": 2544427, "name": "Pavillio Platform", "handle": "pavillio-platform"},
    {
        "id": 2544425,
        "name": "Billing Services Subscription (By Claim)",
        "handle": "billing-services-by-claim",
    },
]
for _component in COMPONENTS:
    _component.update(kind="metered_component", unit_name="claim", product_family_id=PRODUCT_FAMILY["id"])
