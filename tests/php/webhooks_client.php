<?php
// A customer's PHP code against soapservice: SoapClient in WSDL mode with
// SOAP_SINGLE_ELEMENT_ARRAYS, reading $response->XxxResult->error/message/result.
// Usage: php webhooks_client.php BASE_URL USER PASSWORD OTHER_USER
// Checks every answer itself; prints one "ok ..." line per check, exits 1 on the first
// failure (with what it got).

[$script, $base, $user, $password, $other] = $argv;

function check(bool $condition, string $what, $got = null): void {
    if (!$condition) {
        fwrite(STDERR, "FAILED: $what\n" . var_export($got, true) . "\n");
        exit(1);
    }
    echo "ok $what\n";
}

function client(string $wsdl, array $extra = []): SoapClient {
    return new SoapClient($wsdl, $extra + [
        'features' => SOAP_SINGLE_ELEMENT_ARRAYS,
        'exceptions' => true,
        'cache_wsdl' => WSDL_CACHE_NONE,
        'trace' => true,
    ]);
}

$client = client("$base/soap?wsdl");
$functions = implode("\n", $client->__getFunctions());
foreach (['CreateWebHook', 'GetWebHooks', 'ActivateWebHook', 'DeleteWebHookById'] as $op) {
    check(strpos($functions, "{$op}Response $op($op \$parameters)") !== false,
          "WSDL offers $op", $functions);
}

// CreateWebHook
$r = $client->CreateWebHook(['username' => $user, 'password' => $password, 'app' => 'shop',
    'event' => 'optin_finalized', 'url' => 'https://hooks.example.com/optin']);
$created = $r->CreateWebHookResult;
check($created->error === 0 && $created->message === 'OK', 'CreateWebHook error 0', $created);
$hook = $created->result;
check(is_int($hook->id) && $hook->id > 0, 'id is an int', $hook);
check($hook->app === 'shop' && $hook->event === 'optin_finalized'
      && $hook->url === 'https://hooks.example.com/optin', 'fields echoed', $hook);
check($hook->active === true && $hook->failureCount === 0 && $hook->bufferedEvents === 0,
      'new webhook active, no failures', $hook);
check(strpos($hook->secret, 'whsec_') === 0, 'signing secret', $hook);
check(!isset($hook->deactivatedAt), 'no deactivatedAt while active', $hook);
check(strtotime($hook->created) > 0, 'created is a dateTime', $hook->created);

// GetWebHooks with one webhook: still an array thanks to SOAP_SINGLE_ELEMENT_ARRAYS.
$r = $client->GetWebHooks(['username' => $user, 'password' => $password]);
$list = $r->GetWebHooksResult;
check($list->error === 0, 'GetWebHooks error 0', $list);
check(is_array($list->result->WebHook) && count($list->result->WebHook) === 1
      && $list->result->WebHook[0]->id === $hook->id, 'one webhook is a one-element array',
      $list);

// Several webhooks, and the filters.
$second = $client->CreateWebHook(['username' => $user, 'password' => $password,
    'app' => 'shop', 'event' => 'optout_finalized', 'url' => 'https://hooks.example.com/out']
    )->CreateWebHookResult->result;
$third = $client->CreateWebHook(['username' => $user, 'password' => $password,
    'app' => 'blog', 'event' => 'optin_finalized', 'url' => 'http://hooks.example.com/blog']
    )->CreateWebHookResult->result;
$all = $client->GetWebHooks(['username' => $user, 'password' => $password])
    ->GetWebHooksResult->result->WebHook;
check(array_map(fn($h) => $h->id, $all) === [$hook->id, $second->id, $third->id],
      'three webhooks, oldest first', $all);
$shop = $client->GetWebHooks(['username' => $user, 'password' => $password, 'app' => 'shop'])
    ->GetWebHooksResult->result->WebHook;
check(array_map(fn($h) => $h->event, $shop) === ['optin_finalized', 'optout_finalized'],
      'filter by app', $shop);
$optin = $client->GetWebHooks(['username' => $user, 'password' => $password,
    'event' => 'optin_finalized'])->GetWebHooksResult->result->WebHook;
check(array_map(fn($h) => $h->app, $optin) === ['shop', 'blog'], 'filter by event', $optin);
$none = $client->GetWebHooks(['username' => $user, 'password' => $password,
    'app' => 'nothing'])->GetWebHooksResult;
// No match: an empty <result/>; `?? []` reads it (and any list) safely.
check($none->error === 0 && ($none->result->WebHook ?? []) === [], 'no match: empty list',
      $none);

// Without SOAP_SINGLE_ELEMENT_ARRAYS PHP collapses a one-element list to the object.
$plain = new SoapClient("$base/soap?wsdl", ['cache_wsdl' => WSDL_CACHE_NONE]);
$blog = $plain->GetWebHooks(['username' => $user, 'password' => $password, 'app' => 'blog'])
    ->GetWebHooksResult->result->WebHook;
check(is_object($blog) && $blog->id === $third->id,
      'without the flag one webhook is an object (why the flag is needed)', $blog);

// ActivateWebHook
$r = $client->ActivateWebHook(['username' => $user, 'password' => $password,
    'webhookId' => $hook->id, 'replayEvents' => 1]);
$activated = $r->ActivateWebHookResult;
check($activated->error === 0 && $activated->result->active === true
      && $activated->result->replayedEvents === 0 && $activated->result->id === $hook->id,
      'ActivateWebHook on an active webhook succeeds, nothing replayed', $activated);
$r = $client->ActivateWebHook(['username' => $user, 'password' => $password,
    'webhookId' => $hook->id]);
check($r->ActivateWebHookResult->error === 0, 'replayEvents is optional', $r);

// Error codes, as PHP code sees them.
$errors = [
    1 => $client->GetWebHooks(['username' => $user, 'password' => 'wrong'])->GetWebHooksResult,
    2 => $client->CreateWebHook(['username' => $user, 'password' => $password, 'app' => '',
        'event' => 'optin_finalized', 'url' => 'https://x.example.com/'])->CreateWebHookResult,
    3 => $client->CreateWebHook(['username' => $user, 'password' => $password, 'app' => 'a',
        'event' => 'bounce', 'url' => 'https://x.example.com/'])->CreateWebHookResult,
    4 => $client->CreateWebHook(['username' => $user, 'password' => $password, 'app' => 'a',
        'event' => 'optin_finalized', 'url' => 'ftp://x.example.com/'])->CreateWebHookResult,
    5 => $client->DeleteWebHookById(['username' => $user, 'password' => $password,
        'webhookId' => 999999])->DeleteWebHookByIdResult,
    6 => $client->ActivateWebHook(['username' => $user, 'password' => $password,
        'webhookId' => $hook->id, 'replayEvents' => 2])->ActivateWebHookResult,
];
foreach ($errors as $code => $answer) {
    check($answer->error === $code && $answer->message !== '' && !isset($answer->result),
          "error $code: $answer->message", $answer);
}
check(strpos($errors[3]->message, 'optin_finalized') !== false, 'error 3 lists the events',
      $errors[3]);
// PHP turns a non-numeric id into 0 for xs:int: the server says why it is refused.
$zero = $client->DeleteWebHookById(['username' => $user, 'password' => $password,
    'webhookId' => 'abc'])->DeleteWebHookByIdResult;
check($zero->error === 6, "webhookId 'abc' (sent as 0): error 6", $zero);

// Another account's webhook does not exist for it.
$theirs = $client->DeleteWebHookById(['username' => $other, 'password' => $password,
    'webhookId' => $hook->id])->DeleteWebHookByIdResult;
check($theirs->error === 5, "another account's webhook: error 5", $theirs);

// DeleteWebHookById
$r = $client->DeleteWebHookById(['username' => $user, 'password' => $password,
    'webhookId' => $hook->id]);
$deleted = $r->DeleteWebHookByIdResult;
check($deleted->error === 0 && $deleted->result === $hook->id, 'DeleteWebHookById', $deleted);
$again = $client->DeleteWebHookById(['username' => $user, 'password' => $password,
    'webhookId' => $hook->id])->DeleteWebHookByIdResult;
check($again->error === 5, 'deleting twice: error 5', $again);
$left = $client->GetWebHooks(['username' => $user, 'password' => $password])
    ->GetWebHooksResult->result->WebHook;
check(array_map(fn($h) => $h->id, $left) === [$second->id, $third->id], 'two left', $left);

// A request the server cannot take (here an unknown operation) is a SOAP Fault, which
// PHP raises as a SoapFault whose code starts with "Client".
$raw = new SoapClient(null, ['location' => "$base/soap", 'uri' => 'urn:soapservice:webhooks:1',
    'exceptions' => true]);
try {
    $raw->__soapCall('DeleteAllWebHooks', [$user, $password]);
    check(false, 'unknown operation raises SoapFault');
} catch (SoapFault $fault) {
    check(strpos($fault->faultcode, 'Client') !== false
          && strpos($fault->getMessage(), 'DeleteAllWebHooks') !== false,
          "unknown operation: SoapFault $fault->faultcode", $fault->getMessage());
}

// PHP's compression option gzips the requests (with a level) and accepts gzip answers.
$gz = client("$base/soap?wsdl",
             ['compression' => SOAP_COMPRESSION_ACCEPT | SOAP_COMPRESSION_GZIP | 5]);
$listGz = $gz->GetWebHooks(['username' => $user, 'password' => $password])->GetWebHooksResult;
check($listGz->error === 0 && count($listGz->result->WebHook) === 2
      && strpos($gz->__getLastRequestHeaders(), 'Content-Encoding: gzip') !== false,
      'gzip-compressed request', $gz->__getLastRequestHeaders());

// SOAP 1.2 endpoint from PHP.
$client12 = client("$base/soap12?wsdl", ['soap_version' => SOAP_1_2]);
$list12 = $client12->GetWebHooks(['username' => $user, 'password' => $password])
    ->GetWebHooksResult;
check($list12->error === 0 && count($list12->result->WebHook) === 2, 'SOAP 1.2 GetWebHooks',
      $list12);
check(strpos($client12->__getLastRequest(), 'http://www.w3.org/2003/05/soap-envelope') !== false,
      'SOAP 1.2 envelope sent', $client12->__getLastRequest());

echo "all checks passed\n";
