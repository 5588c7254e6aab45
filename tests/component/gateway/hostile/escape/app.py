import os
import time


def handler(event, context):
    """Leaves a double-forked, setsid daemon behind and says its pid."""
    if event.get("crash"):
        os._exit(3)
    read, write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            os.close(write)
            time.sleep(600)
        os._exit(0)
    os.close(write)
    pid = int(os.read(read, 32))
    os.close(read)
    return {"daemon": pid, "pid": os.getpid()}
