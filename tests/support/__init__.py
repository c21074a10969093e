"""Helpers the tests share: apps, servers, shops. No tests here."""
