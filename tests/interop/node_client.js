// An LwM2M client we did not write: lwm2m-node-lib (Telefonica, LwM2M 1.0, plain-text values)
// registers to our server and serves its Device object. Usage:
//   node node_client.js HOST PORT ENDPOINT
// Prints one JSON line per event on stdout: registered, write, execute, set, deregistered.
// Reads commands on stdin: 'set /3/0 9 50' (notifies observers), any other line de-registers.
// NODE_PATH points at the node_modules that scripts/setup_interop.sh filled.
'use strict';

var client = require('lwm2m-node-lib').client;

var host = process.argv[2], port = process.argv[3], endpoint = process.argv[4];
var config = {
    client: {
        lifetime: '300', version: '1.0', logLevel: 'FATAL', observe: {period: 3000},
        ipProtocol: 'udp4', serverProtocol: 'udp4'
    }
};

function say(event) {
    process.stdout.write(JSON.stringify(event) + '\n');
}

function fail(what, error) {
    say({event: 'error', what: what, error: String(error && (error.message || error.name) || error)});
    process.exit(1);
}

var resources = [
    ['/3/0', '0', 'Telefonica I+D'], ['/3/0', '1', 'lwm2m-node-lib'], ['/3/0', '2', 'SN-0042'],
    ['/3/0', '3', '1.4.0'], ['/3/0', '9', '87'], ['/3/0', '14', '+01:00'], ['/3/0', '16', 'U'],
    ['/1/0', '0', '1'], ['/1/0', '1', '300'], ['/1/0', '7', 'U']
];

function createObjects(done) {
    client.registry.create('/1/0', function (e1) {
        if (e1) { return fail('create /1/0', e1); }
        client.registry.create('/3/0', function (e2) {
            if (e2) { return fail('create /3/0', e2); }
            var i = 0;
            (function next() {
                if (i === resources.length) { return done(); }
                var r = resources[i++];
                client.registry.setResource(r[0], r[1], r[2], function (e3) {
                    if (e3) { return fail('set ' + r[0] + '/' + r[1], e3); }
                    next();
                });
            })();
        });
    });
}

client.init(config);
createObjects(function () {
    client.register(host, port, null, endpoint, function (error, info) {
        if (error) { return fail('register', error); }
        client.setHandler(info.serverInfo, 'write', function (type, id, resource, value, callback) {
            say({event: 'write', path: '/' + type + '/' + id + '/' + resource, value: String(value)});
            callback(null);
        });
        client.setHandler(info.serverInfo, 'execute', function (type, id, resource, args, callback) {
            say({event: 'execute', path: '/' + type + '/' + id + '/' + resource, args: String(args || '')});
            callback(null);
        });
        say({event: 'registered', location: info.location, port: info.localPort});
        // stdin, one command a line: "set OBJECT_URI RESOURCE VALUE" changes a value (observers are notified),
        // anything else de-registers and leaves
        var pending = '';
        process.stdin.on('data', function (chunk) {
            pending += chunk.toString();
            var lines = pending.split('\n');
            pending = lines.pop();
            lines.forEach(function (line) {
                var words = line.trim().split(' ');
                if (words[0] === 'set' && words.length === 4) {
                    client.registry.setResource(words[1], words[2], words[3], function (e) {
                        say({event: 'set', path: words[1] + '/' + words[2], value: words[3],
                             error: e ? String(e) : null});
                    });
                    return;
                }
                client.unregister(info, function (e) {
                    say({event: 'deregistered', error: e ? String(e) : null});
                    process.exit(0);
                });
            });
        });
    });
});
