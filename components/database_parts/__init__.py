"""What the program composes with UmamiDatabase (components/database.py): the Aurora admin credentials."""
