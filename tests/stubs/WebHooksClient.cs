// A .NET team's client: the proxy from Mono's `wsdl BASE/soap?wsdl`, called the way
// their code would. Usage: mono WebHooksClient.exe BASE_URL USER PASSWORD OTHER_USER
// Prints one "ok ..." line per check; exits 1 on the first failure.
using System;
using System.Linq;

public static class WebHooksClient {
    static void Check(bool condition, string what, object got = null) {
        if (!condition) {
            Console.Error.WriteLine("FAILED: " + what + "\n" + got);
            Environment.Exit(1);
        }
        Console.WriteLine("ok " + what);
    }

    static int[] Ids(GetWebHooksResult answer) {
        return (answer.result ?? new WebHook[0]).Select(h => h.id).ToArray();
    }

    public static int Main(string[] args) {
        string baseUrl = args[0], user = args[1], password = args[2], other = args[3];
        var api = new WebHookService();
        api.Url = baseUrl + "/soap";

        CreateWebHookResult created = api.CreateWebHook(user, password, "shop",
            "optin_finalized", "https://hooks.example.com/dotnet");
        Check(created.error == 0 && created.message == "OK", "CreateWebHook error 0",
              created.message);
        WebHook hook = created.result;
        Check(hook.id > 0 && hook.app == "shop" && hook.@event == "optin_finalized"
              && hook.url == "https://hooks.example.com/dotnet" && hook.active
              && hook.failureCount == 0 && hook.secret.StartsWith("whsec_")
              && hook.created.Year >= 2024 && !hook.deactivatedAtSpecified,
              "created webhook fields", hook.id);

        GetWebHooksResult one = api.GetWebHooks(user, password, null, null);
        Check(one.error == 0 && Ids(one).SequenceEqual(new[] { hook.id }),
              "GetWebHooks: one webhook", string.Join(",", Ids(one)));
        WebHook second = api.CreateWebHook(user, password, "blog", "optout_finalized",
            "http://hooks.example.com/blog").result;
        GetWebHooksResult two = api.GetWebHooks(user, password, null, null);
        Check(Ids(two).SequenceEqual(new[] { hook.id, second.id }),
              "GetWebHooks: two webhooks, oldest first", string.Join(",", Ids(two)));
        Check(Ids(api.GetWebHooks(user, password, "blog", null)).SequenceEqual(
              new[] { second.id }), "GetWebHooks: filter by app");
        Check(Ids(api.GetWebHooks(user, password, null, "optin_finalized")).SequenceEqual(
              new[] { hook.id }), "GetWebHooks: filter by event");
        GetWebHooksResult none = api.GetWebHooks(user, password, "nothing", null);
        Check(none.error == 0 && Ids(none).Length == 0, "GetWebHooks: no match");

        // An optional xs:int becomes a value plus a ...Specified flag in .NET proxies.
        ActivateWebHookResult activated = api.ActivateWebHook(user, password, hook.id, 1, true);
        Check(activated.error == 0 && activated.result.active
              && activated.result.replayedEvents == 0 && activated.result.id == hook.id,
              "ActivateWebHook replayEvents=1", activated.message);
        Check(api.ActivateWebHook(user, password, hook.id, 0, false).error == 0,
              "ActivateWebHook without replayEvents");
        ActivateWebHookResult badReplay = api.ActivateWebHook(user, password, hook.id, 2, true);
        Check(badReplay.error == 6 && badReplay.result == null,
              "ActivateWebHook replayEvents=2: error 6", badReplay.message);

        Check(api.GetWebHooks(user, "wrong", null, null).error == 1, "error 1");
        CreateWebHookResult badEvent = api.CreateWebHook(user, password, "a", "bounce",
            "https://x.example.com/");
        Check(badEvent.error == 3 && badEvent.message.Contains("optin_finalized"), "error 3",
              badEvent.message);
        Check(api.CreateWebHook(user, password, "a", "optin_finalized", "ftp://x/").error == 4,
              "error 4");
        Check(api.DeleteWebHookById(other, password, hook.id).error == 5,
              "another account's webhook: error 5");

        GetWebHookDeliveriesResult log = api.GetWebHookDeliveries(user, password, hook.id,
            null, 10, true, 0, false);
        Check(log.error == 0 && (log.result ?? new Delivery[0]).Length == 0,
              "GetWebHookDeliveries: none yet", log.message);
        Check(api.GetWebHookDeliveries(user, password, hook.id, "lost", 0, false, 0, false)
              .error == 6, "GetWebHookDeliveries state=lost: error 6");
        // hooks.example.com does not resolve here: an answer without a status.
        TestWebHookResult tested = api.TestWebHook(user, password, hook.id);
        Check(tested.error == 0 && !tested.result.statusSpecified && tested.result.error != null
              && tested.result.messageId.StartsWith("msg_"), "TestWebHook", tested.message);
        RotateWebHookSecretResult rotated = api.RotateWebHookSecret(user, password, hook.id,
            60, true);
        Check(rotated.error == 0 && rotated.result.secret.StartsWith("whsec_")
              && rotated.result.secret != hook.secret, "RotateWebHookSecret", rotated.message);
        Check(api.RotateWebHookSecret(other, password, hook.id, 0, false).error == 5,
              "RotateWebHookSecret of another account's webhook: error 5");
        ResendWebHookEventsResult resent = api.ResendWebHookEvents(user, password, hook.id,
            0, false, DateTime.MinValue, false, DateTime.MinValue, false);
        Check(resent.error == 0 && resent.resultSpecified && resent.result == 0,
              "ResendWebHookEvents: nothing to resend", resent.message);
        Check(api.ResendWebHookEvents(user, password, hook.id, 0, false,
                  new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), true,
                  new DateTime(2026, 2, 1, 0, 0, 0, DateTimeKind.Utc), true).error == 6,
              "ResendWebHookEvents over 31 days: error 6");

        DeleteWebHookByIdResult deleted = api.DeleteWebHookById(user, password, hook.id);
        Check(deleted.error == 0 && deleted.resultSpecified && deleted.result == hook.id,
              "DeleteWebHookById", deleted.message);
        Check(api.DeleteWebHookById(user, password, hook.id).error == 5,
              "deleted twice: error 5");
        Check(Ids(api.GetWebHooks(user, password, null, null)).SequenceEqual(
              new[] { second.id }), "one left");
        Console.WriteLine("all checks passed");
        return 0;
    }
}
