class InsufficientFunds(Exception):
    pass


def handler(event, context):
    print("about to fail")
    raise InsufficientFunds(f"balance too low for {event.get('amount')}")
