"""Embedded simulators and helpers for ``posbridge serve --sandbox`` and the tests.

- :mod:`posbridge.sandbox.codepay_sim`: the CodePay Cloud gateway with simulated terminals;
- :mod:`posbridge.sandbox.ucanpay_sim`: the UCanPay gateway;
- :mod:`posbridge.keyfiles`: RSA key generation and loading (PEM or bare Base64 DER).
"""
