"""What the program composes with UmamiDatabase (components/database.py): the Aurora admin credentials
(admin) and the deployer's ingress rule on Aurora's security group (deployer_access)."""
