"""Window reservations (seed 003): services at counters, the slot calendar, bookings,
reminders. The calendar, contact validation and numbering are pure; the store side lives in
kairand.store.reservations and the chat side in kairand.reservations.dialogue."""
