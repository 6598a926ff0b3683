import Hummingbird
import Mustache
import AsyncHTTPClient
import CompressNIO
