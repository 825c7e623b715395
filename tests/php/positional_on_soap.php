<?php
// A positional caller written for the legacy platform, pointed at /soap by mistake:
// without WSDL (rpc, param0...) and with the document/literal WSDL. Prints each answer's
// error and message, one line each.
[$_, $base, $user, $password] = $argv;
$plain = new SoapClient(null, ['location' => "$base/soap", 'uri' => 'urn:soapservice:webhooks:1',
                               'exceptions' => true]);
$answer = $plain->CreateWebHook($user, $password, 'crm', 'optin_finalized', 'http://127.0.0.1:9/h');
$result = $answer->CreateWebHookResult ?? $answer;
echo "nowsdl ", $result->error, " ", $result->message, "\n";
$typed = new SoapClient("$base/soap?wsdl", ['exceptions' => true]);
try {
    $answer = $typed->GetWebHooks($user, $password);
    echo "wsdl ", $answer->GetWebHooksResult->error, " ", $answer->GetWebHooksResult->message, "\n";
} catch (SoapFault $fault) {
    echo "wsdl fault ", $fault->getMessage(), "\n";
}
