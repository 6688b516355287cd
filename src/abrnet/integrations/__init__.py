"""Adapters to other training frameworks, each imported only when used:
``from abrnet.integrations.lightning import Binarization``."""
