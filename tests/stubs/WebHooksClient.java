// A Java team's client: classes from `wsimport -p soapclient BASE/soap?wsdl`, called the
// way their code would. Usage: java WebHooksClient BASE_URL USER PASSWORD OTHER_USER
// Prints one "ok ..." line per check; exits 1 on the first failure.

import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import javax.xml.datatype.DatatypeFactory;

import soapclient.ActivateWebHookResult;
import soapclient.CreateWebHookResult;
import soapclient.DeleteWebHookByIdResult;
import soapclient.GetWebHookDeliveriesResult;
import soapclient.GetWebHooksResult;
import soapclient.ResendWebHookEventsResult;
import soapclient.RotateWebHookSecretResult;
import soapclient.TestWebHookResult;
import soapclient.WebHook;
import soapclient.WebHookService;
import soapclient.WebHookService_Service;

public class WebHooksClient {
    static void check(boolean condition, String what, Object got) {
        if (!condition) {
            System.err.println("FAILED: " + what + "\n" + got);
            System.exit(1);
        }
        System.out.println("ok " + what);
    }

    static List<Integer> ids(GetWebHooksResult answer) {
        List<Integer> ids = new ArrayList<>();
        for (WebHook hook : answer.getResult().getWebHook()) {
            ids.add(hook.getId());
        }
        return ids;
    }

    public static void main(String[] args) throws Exception {
        String base = args[0], user = args[1], password = args[2], other = args[3];
        WebHookService api = new WebHookService_Service(new URL(base + "/soap?wsdl"))
            .getWebHookService();

        CreateWebHookResult created = api.createWebHook(user, password, "shop",
            "optin_finalized", "https://hooks.example.com/java");
        check(created.getError() == 0 && "OK".equals(created.getMessage()),
              "createWebHook error 0", created.getMessage());
        WebHook hook = created.getResult();
        check(hook.getId() > 0 && "shop".equals(hook.getApp())
              && "optin_finalized".equals(hook.getEvent())
              && "https://hooks.example.com/java".equals(hook.getUrl()) && hook.isActive()
              && hook.getFailureCount() == 0 && hook.getSecret().startsWith("whsec_")
              && hook.getCreated() != null && hook.getDeactivatedAt() == null,
              "created webhook fields", hook.getId());

        GetWebHooksResult one = api.getWebHooks(user, password, null, null);
        check(one.getError() == 0 && ids(one).equals(List.of(hook.getId())),
              "getWebHooks: one webhook", ids(one));
        WebHook second = api.createWebHook(user, password, "blog", "optout_finalized",
            "http://hooks.example.com/blog").getResult();
        GetWebHooksResult two = api.getWebHooks(user, password, null, null);
        check(ids(two).equals(List.of(hook.getId(), second.getId())),
              "getWebHooks: two webhooks, oldest first", ids(two));
        GetWebHooksResult blog = api.getWebHooks(user, password, "blog", null);
        check(ids(blog).equals(List.of(second.getId())), "getWebHooks: filter by app",
              ids(blog));
        GetWebHooksResult optin = api.getWebHooks(user, password, null, "optin_finalized");
        check(ids(optin).equals(List.of(hook.getId())), "getWebHooks: filter by event",
              ids(optin));
        GetWebHooksResult none = api.getWebHooks(user, password, "nothing", null);
        check(none.getError() == 0 && (none.getResult() == null
              || none.getResult().getWebHook().isEmpty()), "getWebHooks: no match", none);

        ActivateWebHookResult activated = api.activateWebHook(user, password, hook.getId(), 1);
        check(activated.getError() == 0 && activated.getResult().isActive()
              && activated.getResult().getReplayedEvents() == 0
              && activated.getResult().getId() == hook.getId(),
              "activateWebHook replayEvents=1", activated.getMessage());
        check(api.activateWebHook(user, password, hook.getId(), null).getError() == 0,
              "activateWebHook without replayEvents", null);
        ActivateWebHookResult badReplay = api.activateWebHook(user, password, hook.getId(), 2);
        check(badReplay.getError() == 6 && badReplay.getResult() == null,
              "activateWebHook replayEvents=2: error 6", badReplay.getMessage());

        check(api.getWebHooks(user, "wrong", null, null).getError() == 1, "error 1", null);
        CreateWebHookResult badEvent = api.createWebHook(user, password, "a", "bounce",
            "https://x.example.com/");
        check(badEvent.getError() == 3 && badEvent.getMessage().contains("optin_finalized"),
              "error 3", badEvent.getMessage());
        check(api.createWebHook(user, password, "a", "optin_finalized", "ftp://x/")
              .getError() == 4, "error 4", null);
        check(api.deleteWebHookById(other, password, hook.getId()).getError() == 5,
              "another account's webhook: error 5", null);

        GetWebHookDeliveriesResult log = api.getWebHookDeliveries(user, password, hook.getId(),
            null, 10, null);
        check(log.getError() == 0 && (log.getResult() == null
              || log.getResult().getDelivery().isEmpty()), "getWebHookDeliveries: none yet",
              log.getMessage());
        check(api.getWebHookDeliveries(user, password, hook.getId(), "lost", null, null)
              .getError() == 6, "getWebHookDeliveries state=lost: error 6", null);
        // hooks.example.com does not resolve here: an answer without a status.
        TestWebHookResult tested = api.testWebHook(user, password, hook.getId());
        check(tested.getError() == 0 && tested.getResult().getStatus() == null
              && tested.getResult().getError() != null
              && tested.getResult().getMessageId().startsWith("msg_"), "testWebHook",
              tested.getMessage());
        RotateWebHookSecretResult rotated = api.rotateWebHookSecret(user, password,
            hook.getId(), 60);
        check(rotated.getError() == 0 && rotated.getResult().getSecret().startsWith("whsec_")
              && !rotated.getResult().getSecret().equals(hook.getSecret()),
              "rotateWebHookSecret", rotated.getMessage());
        check(api.rotateWebHookSecret(other, password, hook.getId(), null).getError() == 5,
              "rotateWebHookSecret of another account's webhook: error 5", null);
        ResendWebHookEventsResult resent = api.resendWebHookEvents(user, password,
            hook.getId(), null, null, null);
        check(resent.getError() == 0 && resent.getResult() == 0,
              "resendWebHookEvents: nothing to resend", resent.getMessage());
        DatatypeFactory dates = DatatypeFactory.newInstance();
        check(api.resendWebHookEvents(user, password, hook.getId(), null,
                  dates.newXMLGregorianCalendar("2026-01-01T00:00:00Z"),
                  dates.newXMLGregorianCalendar("2026-02-01T00:00:00Z")).getError() == 6,
              "resendWebHookEvents over 31 days: error 6", null);

        DeleteWebHookByIdResult deleted = api.deleteWebHookById(user, password, hook.getId());
        check(deleted.getError() == 0 && deleted.getResult() == hook.getId(),
              "deleteWebHookById", deleted.getMessage());
        check(api.deleteWebHookById(user, password, hook.getId()).getError() == 5,
              "deleted twice: error 5", null);
        check(ids(api.getWebHooks(user, password, null, null)).equals(List.of(second.getId())),
              "one left", null);
        System.out.println("all checks passed");
    }
}
