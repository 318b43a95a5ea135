"""Device drivers of posbridge: QR rendering, ESC/POS receipt printers and customer displays.

- :mod:`hardware.qr`: the QR matrix and PNG of a wallet deeplink;
- :mod:`hardware.qr_pool`: the worker process the daemon renders QR codes, slips and pictures in;
- :mod:`hardware.escpos`: ESC/POS command bytes, the :class:`~hardware.escpos.EscPosJob`
  builder and the ``DLE EOT`` status parser (pure);
- :mod:`hardware.receipts`: the slips the bridge prints (pure);
- :mod:`hardware.escpos_render`: our ESC/POS subset drawn as an image (pure);
- :mod:`hardware.printers`: serial, TCP and file printers, and a recording fake;
- :mod:`hardware.print_queue`: one queue per printer, so a printer fault never blocks a payment;
- :mod:`hardware.displays`: customer displays.

This package imports nothing from ``posbridge``; its errors are :mod:`hardware.errors`.
"""
