from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def item(request: Request) -> Response:
    response = JSONResponse(
        {
            "item": request.path_params["item"],
            "tags": request.query_params.getlist("tag"),
            "session": request.cookies.get("session"),
            "theme": request.cookies.get("theme"),
            "x_test": request.headers.get("x-test"),
            "path": request.url.path,
        }
    )
    response.headers["X-App"] = "starlette"
    response.headers["Access-Control-Allow-Origin"] = "https://evil.example"  # overridden
    response.set_cookie("seen", "1")
    response.set_cookie("lang", "en")
    return response


async def echo_bytes(request: Request) -> Response:
    body = await request.body()
    return Response(bytes(reversed(body)), media_type="application/octet-stream")


async def teapot(request: Request) -> Response:
    return PlainTextResponse("short and stout", status_code=418)


app = Starlette(
    routes=[
        Route("/items/{item}", item),
        Route("/echo-bytes", echo_bytes, methods=["POST"]),
        Route("/teapot", teapot),
    ]
)
handler = Mangum(app, lifespan="off")


def broken(event, context):
    raise RuntimeError("this function always fails")


def raw(event, context):
    return event
