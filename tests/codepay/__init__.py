"""Tests of the CodePay provider, its signing and the CodePay simulator."""
