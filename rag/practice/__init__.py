"""Practice: exercises made from the notes, graded by the computer, scheduled by spaced repetition."""
