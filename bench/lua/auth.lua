-- GET with the API key from the environment.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
