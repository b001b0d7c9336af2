// `corral serve [path] [port]` (PM2's `pm2 serve`): a directory's files over
// HTTP as a managed app. The app is this binary run as `corral __serve`, a
// corral::http server with serve_static, in cluster mode: the daemon owns
// the port, so `-i max`, reload and update keep it open as for any app.
#pragma once

namespace corral::cli {

/// `corral __serve DIR --port N [--spa] [--precompressed]`: serves DIR on the socket the
/// daemon passes (LISTEN_FDS), or binds port N itself. Returns the exit code.
int serve_main(int argc, char** argv);

}  // namespace corral::cli
