from sdk.errors import *  # noqa
