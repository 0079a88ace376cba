"""The reminder domain: mileage estimates, due rules and reminder ladders. Pure: no I/O, no clock reads."""
