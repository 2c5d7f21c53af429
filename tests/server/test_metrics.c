/*
 * test_metrics.c — metrics.c: counters, cumulative histograms, search
 * observations, Prometheus text shape, concurrent updates.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pserver.h"

static char *render(struct lk__metrics *m, const char *extra)
{
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(lk__metrics_render(m, 3, 4096, NULL, extra, &out, &len), LK_OK);
    cr_assert_eq(strlen(out), len);
    return out;
}

Test(metrics, request_counters_and_histogram)
{
    struct lk__metrics *m;
    char *t;
    cr_assert_eq(lk__metrics_new(&m), LK_OK);
    lk__metrics_request(m, LK__R_SEARCH, 200, 3.0, 1000);
    lk__metrics_request(m, LK__R_SEARCH, 200, 30.0, 1000);
    lk__metrics_request(m, LK__R_SEARCH, 413, 0.1, 0);
    lk__metrics_request(m, LK__R_UNMATCHED, 418, 0.1, 0);
    lk__metrics_request(m, LK__R_COUNT, 200, 1, 1);    /* ignored */
    t = render(m, "lookalike_catalog_items 5");
    cr_assert_not_null(strstr(t, "lookalike_http_requests_total{route=\"search\",status=\"200\"} 2\n"), "%s", t);
    cr_assert_not_null(strstr(t, "lookalike_http_requests_total{route=\"search\",status=\"413\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_requests_total{route=\"unmatched\",status=\"other\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_duration_ms_bucket{route=\"search\",le=\"1\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_duration_ms_bucket{route=\"search\",le=\"5\"} 2\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_duration_ms_bucket{route=\"search\",le=\"50\"} 3\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_duration_ms_bucket{route=\"search\",le=\"+Inf\"} 3\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_duration_ms_sum{route=\"search\"} 33.100\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_duration_ms_count{route=\"search\"} 3\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_request_bytes_total 2000\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_requests_in_flight 3\n"));
    cr_assert_not_null(strstr(t, "lookalike_http_buffered_bytes 4096\n"));
    cr_assert_not_null(strstr(t, "# TYPE lookalike_search_upload_to_result_ms histogram\n"));
    cr_assert_not_null(strstr(t, "lookalike_catalog_items 5\n"), "extra text appended with a newline");
    free(t);
    lk__metrics_free(m);
    lk__metrics_free(NULL);
}

Test(metrics, search_observations)
{
    struct lk__metrics *m;
    struct lk_search_response resp;
    struct lk_search_result r = {0};
    char *t;
    cr_assert_eq(lk__metrics_new(&m), LK_OK);
    lk_search_response_init(&resp);
    r.sku = "a";
    r.band = LK_BAND_HIGH;
    lk_search_response_add_result(&resp, &r);
    r.band = LK_BAND_LOW;
    lk_search_response_add_result(&resp, &r);
    lk_search_response_add_timing(&resp, "decode", 4.0);
    lk_search_response_add_timing(&resp, "Weird Stage!", 4.0);
    lk__metrics_search(m, &resp, 12.0);
    lk_search_response_free(&resp);
    lk_search_response_add_relaxed(&resp, "category_guard");
    lk__metrics_search(m, &resp, 700.0);    /* zero results + fallback */
    lk_search_response_free(&resp);
    lk__metrics_rate_limited(m);
    t = render(m, NULL);
    cr_assert_not_null(strstr(t, "lookalike_searches_total 2\n"), "%s", t);
    cr_assert_not_null(strstr(t, "lookalike_search_zero_results_total 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_fallback_total 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_results_total{band=\"high\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_results_total{band=\"low\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_results_total{band=\"exact\"} 0\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_best_band_total{band=\"high\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_upload_to_result_ms_bucket{le=\"25\"} 1\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_upload_to_result_ms_bucket{le=\"1000\"} 2\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_stage_ms_bucket{stage=\"decode\",le=\"5\"} 1\n"));
    cr_assert_not_null(strstr(t, "stage=\"weird_stage_\""), "label values sanitised");
    cr_assert_not_null(strstr(t, "lookalike_rate_limited_total 1\n"));
    free(t);
    lk__metrics_free(m);
}

Test(metrics, many_stage_names_fold_into_other)
{
    static const char *const names[] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",
                                        "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19"};
    struct lk__metrics *m;
    struct lk_search_response resp;
    char *t;
    cr_assert_eq(lk__metrics_new(&m), LK_OK);
    for (size_t i = 0; i < 20; i++) {
        lk_search_response_init(&resp);
        lk_search_response_add_timing(&resp, names[i], 1.0);
        lk__metrics_search(m, &resp, 1.0);
    }
    t = render(m, NULL);
    cr_assert_not_null(strstr(t, "stage=\"s15\""));
    cr_assert_null(strstr(t, "stage=\"s16\""));
    cr_assert_not_null(strstr(t, "lookalike_search_stage_ms_count{stage=\"other\"} 4\n"), "%s", t);
    free(t);
    lk__metrics_free(m);
}

static void *hammer(void *p)
{
    struct lk__metrics *m = p;
    struct lk_search_response resp;
    lk_search_response_init(&resp);
    lk_search_response_add_timing(&resp, "embed", 2.0);
    for (int i = 0; i < 10000; i++) {
        lk__metrics_request(m, LK__R_SEARCH, 200, 1.0, 1);
        lk__metrics_search(m, &resp, 1.0);
    }
    return NULL;
}

Test(metrics, concurrent_updates_are_not_lost)
{
    struct lk__metrics *m;
    pthread_t th[4];
    char *t;
    cr_assert_eq(lk__metrics_new(&m), LK_OK);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, m);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    t = render(m, NULL);
    cr_assert_not_null(strstr(t, "lookalike_http_requests_total{route=\"search\",status=\"200\"} 40000\n"));
    cr_assert_not_null(strstr(t, "lookalike_search_stage_ms_count{stage=\"embed\"} 40000\n"), "%s", t);
    free(t);
    lk__metrics_free(m);
}
