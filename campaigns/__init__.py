"""Campaigns: rules, points ledger, coupons, lucky draws and budgets."""
