<?php
// SPDX-License-Identifier: Apache-2.0
// The PHP application behind a POST-only seal (php -S router script).  It
// computes the method and path a framework would act on, the way Symfony/
// Laravel (X-HTTP-Method-Override, _method in the body -- form, multipart
// or JSON -- then the query) and
// IIS-style rewriting (X-Original-URL, X-Rewrite-URL) do, after PHP's own
// header and parameter name mangling, and appends one JSON line to
// $CB_PHP_LOG: what PHP parsed and what the app would do.
$m = $_SERVER['REQUEST_METHOD'];
$eff = $m;
if ($m === 'POST') {
    foreach (['HTTP_X_HTTP_METHOD_OVERRIDE', 'HTTP_X_HTTP_METHOD', 'HTTP_X_METHOD_OVERRIDE'] as $k)
        if (isset($_SERVER[$k]) && $_SERVER[$k] !== '') { $eff = strtoupper($_SERVER[$k]); break; }
    if ($eff === 'POST' && isset($_POST['_method']) && is_string($_POST['_method']))
        $eff = strtoupper($_POST['_method']);
    // Laravel merges a JSON body into the input it reads _method from.
    if ($eff === 'POST' && stripos($_SERVER['CONTENT_TYPE'] ?? '', 'json') !== false) {
        $j = json_decode(file_get_contents('php://input'), true);
        if (is_array($j) && isset($j['_method']) && is_string($j['_method'])) $eff = strtoupper($j['_method']);
    }
    if ($eff === 'POST' && isset($_GET['_method']) && is_string($_GET['_method'])) $eff = strtoupper($_GET['_method']);
}
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
foreach (['HTTP_X_ORIGINAL_URL', 'HTTP_X_REWRITE_URL', 'HTTP_X_ORIGINAL_URI'] as $k)
    if (isset($_SERVER[$k]) && $_SERVER[$k] !== '') { $path = parse_url($_SERVER[$k], PHP_URL_PATH); break; }
$http = [];
foreach ($_SERVER as $k => $v) if (strncmp($k, 'HTTP_', 5) === 0) $http[$k] = $v;
$rec = ['up' => 'php', 'method' => $m, 'target' => $_SERVER['REQUEST_URI'], 'effective_method' => $eff,
        'effective_path' => $path, 'http' => $http, 'get' => array_keys($_GET), 'post' => array_keys($_POST),
        'files' => array_keys($_FILES), 'body_len' => strlen(file_get_contents('php://input'))];
file_put_contents(getenv('CB_PHP_LOG'), json_encode($rec) . "\n", FILE_APPEND | LOCK_EX);
header('Content-Type: application/json');
echo json_encode(['up' => 'php', 'method' => $m, 'effective_method' => $eff, 'effective_path' => $path]), "\n";
