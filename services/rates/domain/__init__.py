"""Pure rules of the rate engine (docs/rates.md): source parsers (sources.py), the formula language
(formula.py) and the guards that freeze a direction (guards.py). No I/O here."""
